// The fused decode ops with their norm prologue and residual epilogue on the GPU (project_many and
// project_swiglu with an InputNorm, project_add) on fresh random inputs: against the CPU reference
// within the activation dtype's rounding, and bit for bit against the plain GPU ops they stand for
// (rmsnorm_forward then the projection; the projection then ops::add), which do the same
// arithmetic. Shapes: the 1B and 8B Llama layers and Qwen3-0.6B's, M = 1..4 (the gemv) and 5, 8
// (the plain ops), bf16 and f16 activations with bf16/f16 or f32 norm weights, and odd sizes: K of
// one load, K that leaves the norm's threads uneven, K whose rows need more than 48 KB of shared
// memory and K too long for it (the plain ops).
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

// A residual stream row of the size decoding sees (|x| ~ 1-3) and a norm weight near 1.
struct NormInputs {
  Tensor x, weight;
  float eps = 1e-5f;
};

NormInputs norm_inputs(int64_t m, int64_t k, DType dtype, DType norm_dtype, uint64_t seed) {
  NormInputs in{random_tensor({m, k}, dtype, gpu, seed, 2.0f), random_tensor({k}, norm_dtype, gpu, seed + 1, 0.3f)};
  Tensor ones = Tensor::empty({k}, norm_dtype, gpu);
  ops::fill(ones, 1.0f);
  ops::add(in.weight, in.weight, ones);
  return in;
}

// h = rmsnorm_forward(x) on the GPU: the plain op the prologue stands for.
Tensor plain_norm(const NormInputs& in) {
  const int64_t m = in.x.size(0), k = in.x.size(1);
  Tensor h = Tensor::empty({m, k}, in.x.dtype(), gpu), rstd = Tensor::empty({m}, DType::F32, gpu);
  ops::rmsnorm_forward(h, rstd, in.x, in.weight, in.eps);
  return h;
}

Tensor nan_filled(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype, gpu);
  ops::fill(t, std::numeric_limits<float>::quiet_NaN());  // every element must be written
  return t;
}

struct ManyCase {
  int64_t m, k;
  std::vector<int64_t> n;  // rows of each weight
  bool bias = false;
  DType dtype = DType::BF16, norm_dtype = DType::BF16;
};

void check_normed_project_many(const ManyCase& c) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << c.m << " k " << c.k << " weights " << c.n.size()
                                    << " bias " << c.bias << " " << dtype_name(c.dtype) << " norm "
                                    << dtype_name(c.norm_dtype));
  const NormInputs in = norm_inputs(c.m, c.k, c.dtype, c.norm_dtype, seed);
  std::vector<Tensor> w, b, outs, cpu_w, cpu_b, cpu_outs, plain;
  for (size_t i = 0; i < c.n.size(); ++i) {
    w.push_back(random_tensor({c.n[i], c.k}, c.dtype, gpu, seed + 2 + i, 0.05f));
    b.push_back(c.bias ? random_tensor({c.n[i]}, c.dtype, gpu, seed + 10 + i) : Tensor());
    outs.push_back(nan_filled({c.m, c.n[i]}, c.dtype));
    plain.push_back(nan_filled({c.m, c.n[i]}, c.dtype));
    cpu_w.push_back(on_cpu(w[i]));
    cpu_b.push_back(on_cpu(b[i]));
    cpu_outs.push_back(Tensor::empty({c.m, c.n[i]}, c.dtype));
  }
  ops::project_many(outs, in.x, w, b, InputNorm{in.weight, in.eps});
  ops::project_many(cpu_outs, on_cpu(in.x), cpu_w, cpu_b, InputNorm{on_cpu(in.weight), in.eps});
  ops::project_many(plain, plain_norm(in), w, b);
  for (size_t i = 0; i < c.n.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "weight " << i << " of " << c.n[i] << " rows");
    EXPECT_LT(relative_error(outs[i], cpu_outs[i]), rounding_tolerance(c.dtype));
    EXPECT_EQ(host_f32(outs[i]), host_f32(plain[i])) << "rmsnorm_forward then project_many, bit for bit";
  }
}

}  // namespace

TEST(CudaNormPrologue, ProjectManyOnLayerShapes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4, 5, 8}) {
    check_normed_project_many({m, 2048, {2048, 512, 512}});         // 1B q, k, v
    check_normed_project_many({m, 4096, {4096, 1024, 1024}});       // 8B
    check_normed_project_many({m, 1024, {2048, 1024, 1024}});       // Qwen3-0.6B (head_dim 128 x 16 heads)
    check_normed_project_many({m, 896, {896, 128, 128}, true});     // Qwen2-0.5B with biases
  }
}

TEST(CudaNormPrologue, ProjectManyOddSizesAndDtypes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4}) {
    check_normed_project_many({m, 8, {1, 2, 3}});                                       // 32 norm threads, 8 busy
    check_normed_project_many({m, 24, {7, 13}});
    check_normed_project_many({m, 520, {64, 64, 64}, false, DType::F16, DType::F16});  // 8 threads take a second element
    check_normed_project_many({m, 2056, {33}, false, DType::BF16, DType::F32});        // f32 norm weight
    check_normed_project_many({m, 1000, {5, 9, 3}, true, DType::F16, DType::F32});
    check_normed_project_many({m, 8192, {40}});   // > 48 KB of shared memory from m = 2
    check_normed_project_many({m, 16384, {24}});  // 96 KB at m = 1; past the prologue from m = 2: the plain ops
  }
}

namespace {

void check_normed_project_swiglu(int64_t m, int64_t f, int64_t k, DType dtype, DType norm_dtype = DType::BF16) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << m << " f " << f << " k " << k << " "
                                    << dtype_name(dtype) << " norm " << dtype_name(norm_dtype));
  const NormInputs in = norm_inputs(m, k, dtype, norm_dtype, seed);
  const Tensor gate = random_tensor({f, k}, dtype, gpu, seed + 2, 0.1f), up = random_tensor({f, k}, dtype, gpu, seed + 3, 0.05f);
  Tensor out = nan_filled({m, f}, dtype), plain = nan_filled({m, f}, dtype), cpu_out = Tensor::empty({m, f}, dtype);
  ops::project_swiglu(out, in.x, gate, up, InputNorm{in.weight, in.eps});
  ops::project_swiglu(cpu_out, on_cpu(in.x), on_cpu(gate), on_cpu(up), InputNorm{on_cpu(in.weight), in.eps});
  ops::project_swiglu(plain, plain_norm(in), gate, up);
  EXPECT_LT(relative_error(out, cpu_out), rounding_tolerance(dtype));
  EXPECT_EQ(host_f32(out), host_f32(plain)) << "rmsnorm_forward then project_swiglu, bit for bit";
}

}  // namespace

TEST(CudaNormPrologue, ProjectSwigluOnLayerShapes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4, 6}) {
    check_normed_project_swiglu(m, 8192, 2048, DType::BF16);   // 1B
    check_normed_project_swiglu(m, 14336, 4096, DType::BF16);  // 8B
    check_normed_project_swiglu(m, 3072, 1024, DType::BF16);   // Qwen3-0.6B
  }
}

TEST(CudaNormPrologue, ProjectSwigluOddSizesAndDtypes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 3, 4}) {
    check_normed_project_swiglu(m, 1, 8, DType::BF16);  // one column: half a block
    check_normed_project_swiglu(m, 7, 24, DType::BF16, DType::F32);
    check_normed_project_swiglu(m, 4864, 896, DType::F16, DType::F16);  // Qwen2-0.5B
    check_normed_project_swiglu(m, 33, 2056, DType::BF16);
    check_normed_project_swiglu(m, 5, 8192, DType::F16, DType::F32);  // > 48 KB of rows at m = 4
  }
}

namespace {

struct AddCase {
  int64_t m, n, k;
  bool bias = false, in_place = false;
  DType dtype = DType::BF16;
};

void check_project_add(const AddCase& c) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << c.m << " n " << c.n << " k " << c.k << " bias "
                                    << c.bias << " in place " << c.in_place << " " << dtype_name(c.dtype));
  const Tensor x = random_tensor({c.m, c.k}, c.dtype, gpu, seed), w = random_tensor({c.n, c.k}, c.dtype, gpu, seed + 1, 0.05f);
  const Tensor residual = random_tensor({c.m, c.n}, c.dtype, gpu, seed + 2, 2.0f);
  const Tensor bias = c.bias ? random_tensor({c.n}, c.dtype, gpu, seed + 3) : Tensor();
  Tensor out = c.in_place ? residual.clone() : nan_filled({c.m, c.n}, c.dtype);
  ops::project_add(out, x, w, c.in_place ? out : residual, bias);
  Tensor cpu_out = Tensor::empty({c.m, c.n}, c.dtype);
  ops::project_add(cpu_out, on_cpu(x), on_cpu(w), on_cpu(residual), on_cpu(bias));
  EXPECT_LT(relative_error(out, cpu_out), rounding_tolerance(c.dtype));
  // The plain ops on the GPU: the projection, then the add.
  Tensor y = Tensor::empty({c.m, c.n}, c.dtype, gpu), plain = Tensor::empty({c.m, c.n}, c.dtype, gpu);
  ops::gemm(y, x, w, false, true, 1.0f, 0.0f, bias);
  ops::add(plain, residual, y);
  if (c.bias) EXPECT_LT(relative_error(out, plain), rounding_tolerance(c.dtype));  // cuBLASLt adds the bias itself
  else EXPECT_EQ(host_f32(out), host_f32(plain)) << "ops::gemm then ops::add, bit for bit";
}

}  // namespace

TEST(CudaResidualEpilogue, ProjectAddOnLayerShapes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4, 5, 8}) {
    check_project_add({m, 2048, 2048});   // 1B o_proj
    check_project_add({m, 2048, 8192});   // 1B down_proj
    check_project_add({m, 4096, 4096});   // 8B o_proj
    check_project_add({m, 4096, 14336});  // 8B down_proj
    check_project_add({m, 1024, 2048});   // Qwen3-0.6B o_proj
    check_project_add({m, 1024, 3072});   // Qwen3-0.6B down_proj
  }
}

TEST(CudaResidualEpilogue, ProjectAddOddSizesInPlaceAndDtypes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4, 7}) {
    check_project_add({m, 1, 8});
    check_project_add({m, 33, 2056, false, true});  // out is the residual
    check_project_add({m, 64, 520, true});          // a bias
    check_project_add({m, 896, 896, false, false, DType::F16});
    check_project_add({m, 24, 12});                 // K % 8 != 0: the plain ops
    check_project_add({m, 9, 40, false, true, DType::F32});  // the gemv takes no f32: the plain ops
  }
}

// ops::folds_into_gemv answers what the ops above do: the gemv's rows and shapes, the prologue's
// shared memory, and the cuBLASLt choice.
TEST(CudaNormPrologue, FoldsIntoGemvMatchesTheGemvsReach) {
  TS_REQUIRE_GPU();
  const Tensor w = random_tensor({64, 2048}, DType::BF16, gpu, 1), odd = random_tensor({64, 12}, DType::BF16, gpu, 2);
  const Tensor wide = random_tensor({8, 16384}, DType::BF16, gpu, 3), f32 = random_tensor({8, 64}, DType::F32, gpu, 4);
  for (int64_t m : {1, 4}) {
    EXPECT_TRUE(ops::folds_into_gemv(m, w, true));
    EXPECT_TRUE(ops::folds_into_gemv(m, wide, false));
  }
  EXPECT_FALSE(ops::folds_into_gemv(5, w, false));
  EXPECT_FALSE(ops::folds_into_gemv(0, w, false));
  EXPECT_FALSE(ops::folds_into_gemv(1, odd, false));
  EXPECT_FALSE(ops::folds_into_gemv(1, f32, false));
  EXPECT_TRUE(ops::folds_into_gemv(1, wide, true)) << "96 KB: the row and the f32 weight";
  EXPECT_FALSE(ops::folds_into_gemv(2, wide, true)) << "128 KB";
  const SmallMChoice before = ops::small_m_choice();
  ops::set_small_m_choice({SmallMKernel::CuBlas});
  EXPECT_FALSE(ops::folds_into_gemv(1, w, true));
  check_normed_project_many({2, 2048, {2048, 512, 512}});  // cuBLASLt chosen: the plain ops, the same numbers
  check_project_add({2, 2048, 2048});
  ops::set_small_m_choice(before);
}
