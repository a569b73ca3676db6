// Every CUDA op against its CPU reference on fresh random inputs (tests/kernels, label gpu).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/memory.h"
#include "core/stream.h"
#include "kernels/launch_overlap.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {
const Device gpu = Device::cuda(0);

double gemm_tolerance(DType in, DType out) {
  if (in == DType::F32) return 1e-5;
  return (in == DType::BF16 || out == DType::BF16) ? 1e-2 : 2e-3;
}
}  // namespace

TEST(CudaOps, RandomFillsMatchTheCpuExactly) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  Tensor cpu_u = Tensor::empty({100003}, DType::F32), cpu_n = Tensor::empty({100003}, DType::F32);
  Tensor gpu_u = Tensor::empty({100003}, DType::F32, gpu), gpu_n = Tensor::empty({100003}, DType::F32, gpu);
  ops::fill_uniform(cpu_u, seed, 17, -2, 2);
  ops::fill_uniform(gpu_u, seed, 17, -2, 2);
  ops::fill_normal(cpu_n, seed, 17, 0, 1);
  ops::fill_normal(gpu_n, seed, 17, 0, 1);
  EXPECT_EQ(host_f32(gpu_u), host_f32(cpu_u));
  auto a = host_f32(gpu_n), b = host_f32(cpu_n);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LE(worst, 1e-6) << "seed " << seed;
}

class CudaCast : public ::testing::TestWithParam<std::tuple<DType, DType>> {};

TEST_P(CudaCast, BitwiseEqualToCpu) {
  TS_REQUIRE_GPU();
  const auto [from, to] = GetParam();
  const uint64_t seed = fresh_seed();
  Tensor src = random_tensor({65537}, from, Device::cpu(), seed, 100.0f);
  Tensor cpu_out = ops::cast(src, to);
  Tensor gpu_out = ops::cast(src.to(gpu), to).to(Device::cpu());
  if (to == DType::F32)
    EXPECT_EQ(gpu_out.to_vector<float>(), cpu_out.to_vector<float>()) << "seed " << seed;
  else
    EXPECT_EQ(gpu_out.to_vector<uint16_t>(), cpu_out.to_vector<uint16_t>()) << "seed " << seed;
}

INSTANTIATE_TEST_SUITE_P(AllPairs, CudaCast,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16, DType::F16),
                                            ::testing::Values(DType::F32, DType::BF16, DType::F16)));

class CudaElementwise : public ::testing::TestWithParam<DType> {};

// On whole buffers (packs of four and a three-element tail) and on views that start one element
// in (no aligned packs: one element per access).
TEST_P(CudaElementwise, AddScaleFillCopyMatchCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  const int64_t n = 3003;
  const double tol = dtype == DType::F32 ? 1e-6 : dtype == DType::BF16 ? 1e-2 : 1e-3;
  for (int64_t at : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed << ", view from element " << at);
    auto part = [&](const Tensor& t) { return t.flat_slice(at, n - at); };
    Tensor a = random_tensor({n}, dtype, Device::cpu(), seed), b = random_tensor({n}, dtype, Device::cpu(), seed + 1);
    Tensor ga = a.to(gpu), gb = b.to(gpu);
    Tensor cpu_out = Tensor::empty({n}, dtype), gpu_out = Tensor::empty({n}, dtype, gpu);
    ops::add(part(cpu_out), part(a), part(b), 0.75f, -1.25f);
    ops::add(part(gpu_out), part(ga), part(gb), 0.75f, -1.25f);
    EXPECT_LT(relative_error(part(gpu_out), part(cpu_out)), tol);
    ops::scale(part(cpu_out), part(a), -3.5f);
    ops::scale(part(gpu_out), part(ga), -3.5f);
    EXPECT_LT(relative_error(part(gpu_out), part(cpu_out)), tol);
    ops::fill(part(gpu_out), 0.3f);
    ops::fill(part(cpu_out), 0.3f);
    EXPECT_EQ(host_f32(part(gpu_out)), host_f32(part(cpu_out)));
    Tensor cpu_f32 = Tensor::empty({n}, DType::F32), gpu_f32 = Tensor::empty({n}, DType::F32, gpu);
    ops::copy(part(cpu_f32), part(a));
    ops::copy(part(gpu_f32), part(ga));
    EXPECT_EQ(host_f32(part(gpu_f32)), host_f32(part(cpu_f32)));
  }
}

INSTANTIATE_TEST_SUITE_P(FloatTypes, CudaElementwise, ::testing::Values(DType::F32, DType::BF16, DType::F16));

class CudaGemm : public ::testing::TestWithParam<std::tuple<bool, bool, bool, std::tuple<DType, DType>>> {};

TEST_P(CudaGemm, MatchesCpuReference) {
  TS_REQUIRE_GPU();
  const auto [ta, tb, with_bias, types] = GetParam();
  const auto [in, out] = types;
  const int64_t m = 133, n = 96, k = 200;  // odd sizes on purpose
  const uint64_t seed = fresh_seed();
  Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, in, Device::cpu(), seed);
  Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, in, Device::cpu(), seed + 1);
  Tensor c = random_tensor({m, n}, out, Device::cpu(), seed + 2);
  Tensor bias = with_bias ? random_tensor({n}, out, Device::cpu(), seed + 3) : Tensor();
  Tensor gpu_c = c.to(gpu);
  ops::gemm(gpu_c, a.to(gpu), b.to(gpu), ta, tb, 0.5f, 0.75f, with_bias ? bias.to(gpu) : Tensor());
  ops::gemm(c, a, b, ta, tb, 0.5f, 0.75f, bias);
  EXPECT_LT(relative_error(gpu_c, c), gemm_tolerance(in, out)) << "seed " << seed;
}

INSTANTIATE_TEST_SUITE_P(
    AllLayouts, CudaGemm,
    ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::Bool(),
                       ::testing::Values(std::make_tuple(DType::F32, DType::F32), std::make_tuple(DType::BF16, DType::BF16),
                                         std::make_tuple(DType::BF16, DType::F32), std::make_tuple(DType::F16, DType::F16),
                                         std::make_tuple(DType::F16, DType::F32))));

// A few rows against a weight (decode steps: ops::gemm runs them with the small-M kernels of
// kernels/cuda/small_m.h instead of cuBLASLt), with alpha and beta, against the CPU reference:
// the gemv up to 4 rows and cuBLASLt beyond (asked for the gemv or by default), N odd, K short of
// the gemv's round of loads, not a multiple of one, and long.
class CudaSmallMGemm : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, std::tuple<DType, DType>>> {};

TEST_P(CudaSmallMGemm, MatchesCpuReference) {
  TS_REQUIRE_GPU();
  const auto [m, k, types] = GetParam();
  const auto [in, out] = types;
  const int64_t n = 1003;
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Tensor a = random_tensor({m, k}, in, Device::cpu(), seed);
  Tensor w = random_tensor({n, k}, in, Device::cpu(), seed + 1, 0.05f);
  Tensor c = random_tensor({m, n}, out, Device::cpu(), seed + 2);
  Tensor expect = c.clone(), plain = Tensor::empty({m, n}, out);
  ops::gemm(expect, a, w, false, true, 0.5f, 0.75f);
  ops::gemm(plain, a, w, false, true);
  const Tensor ga = a.to(gpu), gw = w.to(gpu);
  const SmallMChoice before = ops::small_m_choice();
  for (const SmallMChoice choice :
       {SmallMChoice{SmallMKernel::Auto}, SmallMChoice{SmallMKernel::Gemv}, SmallMChoice{SmallMKernel::Fused}}) {
    SCOPED_TRACE(::testing::Message() << ops::small_m_kernel_name(choice.kernel));
    ops::set_small_m_choice(choice);
    Tensor gpu_c = c.to(gpu), gpu_plain = Tensor::empty({m, n}, out, gpu);
    ops::fill(gpu_plain, 1e6f);  // beta = 0 must not read it
    ops::gemm(gpu_c, ga, gw, false, true, 0.5f, 0.75f);
    ops::gemm(gpu_plain, ga, gw, false, true);
    EXPECT_LT(relative_error(gpu_c, expect), gemm_tolerance(in, out));
    EXPECT_LT(relative_error(gpu_plain, plain), gemm_tolerance(in, out));
  }
  ops::set_small_m_choice(before);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, CudaSmallMGemm,
    ::testing::Combine(::testing::Values(int64_t(1), int64_t(2), int64_t(3), int64_t(4), int64_t(5), int64_t(8)),
                       ::testing::Values(int64_t(72), int64_t(2056), int64_t(4104)),
                       ::testing::Values(std::make_tuple(DType::BF16, DType::BF16),
                                         std::make_tuple(DType::BF16, DType::F32),
                                         std::make_tuple(DType::F16, DType::F32),
                                         std::make_tuple(DType::F16, DType::F16))));

// TESSERA_SMALL_M=fused: a plain gemm (lm_head) runs cuBLASLt, bit for bit the cublas choice's,
// while the fused decode ops keep the gemv, bit for bit the gemv choice's (both on random inputs
// whose gemv and cuBLASLt sums differ in their last bits, so each equality says which kernel ran).
TEST(CudaSmallMChoice, FusedTakesTheGemvOnlyInTheFusedOps) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t m = 1, n = 4104, k = 2056;
  const Tensor a = random_tensor({m, k}, DType::BF16, gpu, seed), w = random_tensor({n, k}, DType::BF16, gpu, seed + 1, 0.05f);
  const Tensor residual = random_tensor({m, n}, DType::BF16, gpu, seed + 2);
  const auto under = [&](SmallMKernel kernel) {
    ops::set_small_m_choice({kernel});
    Tensor logits = Tensor::empty({m, n}, DType::F32, gpu), projected = Tensor::empty({m, n}, DType::BF16, gpu);
    ops::gemm(logits, a, w, false, true);
    ops::project_add(projected, a, w, residual, Tensor());
    return std::make_pair(host_f32(logits), host_f32(projected));
  };
  const SmallMChoice before = ops::small_m_choice();
  const auto fused = under(SmallMKernel::Fused), cublas = under(SmallMKernel::CuBlas), gemv = under(SmallMKernel::Gemv);
  ops::set_small_m_choice(before);
  ASSERT_NE(cublas.first, gemv.first) << "the two kernels' sums must differ for the test to tell them apart";
  EXPECT_EQ(fused.first, cublas.first) << "plain gemm under fused: cuBLASLt";
  EXPECT_EQ(fused.second, gemv.second) << "project_add under fused: the gemv";
  Tensor expect = Tensor::empty({m, n}, DType::F32);
  ops::gemm(expect, on_cpu(a), on_cpu(w), false, true);
  EXPECT_LT(relative_error(fused.first, host_f32(expect)), gemm_tolerance(DType::BF16, DType::F32));
}

// Inside a LaunchOverlap scope that is on, kernels start before their predecessor ends
// (programmatic dependent launch) and must wait for it before reading what it wrote: a chain
// where each op reads the one before, the small-M gemv among them, equals the CPU's chain.
TEST(CudaLaunchOverlap, EachKernelSeesItsPredecessorsOutput) {
  TS_REQUIRE_GPU();
  const int64_t m = 16, n = 4104, k = 8192;
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Tensor a = random_tensor({m, k}, DType::BF16, Device::cpu(), seed);
  Tensor w = random_tensor({n, k}, DType::BF16, Device::cpu(), seed + 1, 0.05f);
  Tensor w2 = random_tensor({k, n}, DType::BF16, Device::cpu(), seed + 2, 0.05f);
  auto chain = [&](const Tensor& a0, const Tensor& w0, const Tensor& w1, int64_t rows) {
    const Device d = a0.device();
    Tensor x = Tensor::empty({rows, k}, DType::BF16, d), y = Tensor::empty({rows, n}, DType::BF16, d);
    Tensor z = Tensor::empty({rows, k}, DType::F32, d);
    ops::scale(x, a0.flat_slice(0, rows * k).view({rows, k}), 2.0f);
    ops::gemm(y, x, w0, false, true);
    ops::add(y, y, y, 1.0f, 0.5f);
    ops::gemm(z, y, w1, false, true);
    return z;
  };
  for (int64_t rows : {int64_t(1), int64_t(4), m}) {
    SCOPED_TRACE(::testing::Message() << "rows " << rows);
    const Tensor expect = chain(a, w, w2, rows);
    Tensor got;
    {
      const ops::LaunchOverlap on(true);
      got = chain(a.to(gpu), w.to(gpu), w2.to(gpu), rows);
    }
    EXPECT_LT(relative_error(got, expect), 2e-2);
  }
}

TEST(CudaOps, GemmOnBatchedActivations) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  Tensor x = random_tensor({4, 64, 256}, DType::BF16, Device::cpu(), seed);
  Tensor w = random_tensor({384, 256}, DType::BF16, Device::cpu(), seed + 1, 0.05f);
  Tensor y = Tensor::empty({4, 64, 384}, DType::F32), gy = Tensor::empty({4, 64, 384}, DType::F32, gpu);
  ops::gemm(y, x, w, false, true);
  ops::gemm(gy, x.to(gpu), w.to(gpu), false, true);
  EXPECT_LT(relative_error(gy, y), 1e-2) << "seed " << seed;
  // Weight gradient: dW[out, in] = dY^T X over all batch rows.
  Tensor dw = Tensor::empty({384, 256}, DType::F32), gdw = Tensor::empty({384, 256}, DType::F32, gpu);
  ops::gemm(dw, y, ops::cast(x, DType::F32), true, false);
  ops::gemm(gdw, gy, ops::cast(x.to(gpu), DType::F32), true, false);
  EXPECT_LT(relative_error(gdw, dw), 1e-2) << "seed " << seed;
}

TEST(CudaAllocator, CachesReusesAndReportsPeaks) {
  TS_REQUIRE_GPU();
  synchronize_device(gpu);
  reset_peak_memory(gpu);
  const MemoryStats start = memory_stats(gpu);
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({3 << 20}, DType::F32, gpu);  // 12 MiB
    first = t.data();
    EXPECT_EQ(memory_stats(gpu).allocated, start.allocated + (12u << 20));
  }
  EXPECT_EQ(memory_stats(gpu).allocated, start.allocated);
  EXPECT_GE(memory_stats(gpu).peak_allocated, start.allocated + (12u << 20));
  EXPECT_GE(memory_stats(gpu).reserved, 12u << 20);  // kept in the cache
  Tensor again = Tensor::empty({3 << 20}, DType::F32, gpu);
  EXPECT_EQ(again.data(), first) << "a freed block is reused on the same stream";
  // A block used on another stream is not reused until that stream has passed it.
  Stream side = create_stream(0);
  void* used_elsewhere = again.data();
  again.record_stream(side);
  again = Tensor();
  Tensor other = Tensor::empty({3 << 20}, DType::F32, gpu);
  synchronize_stream(side);
  destroy_stream(side);
  (void)used_elsewhere;
  EXPECT_NE(other.data(), nullptr);
  empty_cache(gpu);
}

TEST(CudaAllocator, OutOfMemoryIsAClearError) {
  TS_REQUIRE_GPU();
  try {
    Tensor huge = Tensor::empty({int64_t(1) << 42}, DType::F32, gpu);  // 16 TiB
    FAIL() << "allocated 16 TiB";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA out of memory on cuda:0"), std::string::npos) << e.what();
  }
}

TEST(CudaOps, GemmOnMisalignedViews) {
  TS_REQUIRE_GPU();
  // Rows of an odd width: narrow() views start at addresses only 2-byte aligned.
  const uint64_t seed = fresh_seed();
  Tensor x = random_tensor({9, 33}, DType::BF16, Device::cpu(), seed);
  Tensor w = random_tensor({17, 33}, DType::BF16, Device::cpu(), seed + 1);
  Tensor gx = x.to(gpu), gw = w.to(gpu);
  for (int64_t start : {1, 3, 4}) {
    Tensor y = Tensor::empty({5, 17}, DType::F32), gy = Tensor::empty({5, 17}, DType::F32, gpu);
    ops::gemm(y, x.narrow(start, 5), w, false, true);
    ops::gemm(gy, gx.narrow(start, 5), gw, false, true);
    EXPECT_LT(relative_error(gy, y), 1e-2) << "start " << start << " seed " << seed;
  }
}
