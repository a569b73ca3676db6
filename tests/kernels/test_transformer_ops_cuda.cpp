// The CUDA transformer ops against their CPU references on fresh random inputs, odd sizes
// (tests/kernels, label gpu). Both backends round intermediates alike in bf16/f16, so those
// compare within a few units in the last place of the activation dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "kernels/ops.h"
#include "kernels/stacked_ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);
const Device cpu = Device::cpu();

// What an accumulating op added to a gradient that held `before`.
std::vector<float> added(const Tensor& grad, const std::vector<float>& before) {
  std::vector<float> now = host_f32(grad);
  for (size_t i = 0; i < now.size(); ++i) now[i] -= before[i];
  return now;
}

}  // namespace

class CudaEmbedding : public ::testing::TestWithParam<std::tuple<DType, DType>> {};  // weight, ids

TEST_P(CudaEmbedding, MatchesCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, id_type] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 37, vocab = 101, h = 200;  // 37 tokens over 101 rows: some ids repeat
  Tensor ids = random_ids(n, vocab, id_type, seed);
  Tensor weight = random_tensor({vocab, h}, dtype, cpu, seed + 1);
  Tensor out = Tensor::empty({n, h}, dtype), gpu_out = Tensor::empty({n, h}, dtype, gpu);
  ops::embedding_forward(out, weight, ids);
  ops::embedding_forward(gpu_out, weight.to(gpu), ids.to(gpu));
  EXPECT_EQ(host_f32(gpu_out), host_f32(out)) << "a gather is exact";

  Tensor dout = random_tensor({n, h}, dtype, cpu, seed + 2);
  Tensor dweight = random_tensor({vocab, h}, DType::F32, cpu, seed + 3), gpu_dweight = dweight.to(gpu);
  const auto before = host_f32(dweight);
  ops::embedding_backward(dweight, dout, ids);
  ops::embedding_backward(gpu_dweight, dout.to(gpu), ids.to(gpu));
  EXPECT_LT(relative_error(added(gpu_dweight, before), added(dweight, before)), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Types, CudaEmbedding,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16, DType::F16),
                                            ::testing::Values(DType::I32, DType::I64)));

// dtype of x, f32 weight or not, row length (128: Qwen3's q_norm on head_dim; 4100: long rows).
class CudaRmsNorm : public ::testing::TestWithParam<std::tuple<DType, bool, int64_t>> {};

TEST_P(CudaRmsNorm, ForwardAndBackwardMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, f32_weight, d] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 37;
  const DType wtype = f32_weight ? DType::F32 : dtype;
  Tensor x = random_tensor({n, d}, dtype, cpu, seed, 2.0f);
  Tensor weight = random_tensor({d}, wtype, cpu, seed + 1);
  Tensor out = Tensor::empty({n, d}, dtype), rstd = Tensor::empty({n}, DType::F32);
  Tensor gpu_out = Tensor::empty({n, d}, dtype, gpu), gpu_rstd = Tensor::empty({n}, DType::F32, gpu);
  ops::rmsnorm_forward(out, rstd, x, weight, 1e-6f);
  ops::rmsnorm_forward(gpu_out, gpu_rstd, x.to(gpu), weight.to(gpu), 1e-6f);
  EXPECT_LT(relative_error(gpu_rstd, rstd), 2e-6);  // rsqrtf is within 2 ulp
  EXPECT_LT(relative_error(gpu_out, out), rounding_tolerance(dtype));

  Tensor dout = random_tensor({n, d}, dtype, cpu, seed + 2);
  Tensor dx = Tensor::empty({n, d}, dtype), gpu_dx = Tensor::empty({n, d}, dtype, gpu);
  Tensor dweight = random_tensor({d}, DType::F32, cpu, seed + 3), gpu_dweight = dweight.to(gpu);
  const auto before = host_f32(dweight);
  ops::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
  ops::rmsnorm_backward(gpu_dx, gpu_dweight, dout.to(gpu), x.to(gpu), weight.to(gpu), rstd.to(gpu));
  EXPECT_LT(relative_error(gpu_dx, dx), rounding_tolerance(dtype));
  EXPECT_LT(relative_error(added(gpu_dweight, before), added(dweight, before)), rounding_tolerance(dtype));
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaRmsNorm,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16, DType::F16), ::testing::Bool(),
                                            ::testing::Values(int64_t(200), int64_t(128), int64_t(4100))));

class CudaRope : public ::testing::TestWithParam<std::tuple<DType, int64_t, float>> {};  // dtype, head_dim, scaling

TEST_P(CudaRope, ForwardAndBackwardMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, head_dim, scaling] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t heads = 5;
  // Three packed documents: positions restart at 0; the last one sits deep into a long context.
  std::vector<int32_t> pos;
  for (int32_t p = 0; p < 20; ++p) pos.push_back(p);
  for (int32_t p = 0; p < 9; ++p) pos.push_back(p);
  for (int32_t p = 0; p < 8; ++p) pos.push_back(32760 + p);
  const int64_t n = static_cast<int64_t>(pos.size());  // 37
  Tensor positions = Tensor::from_vector(pos, {n}, DType::I32);
  Tensor inv_freq = inverse_frequencies(head_dim, 1e6);
  Tensor x = random_tensor({n, heads, head_dim}, dtype, cpu, seed), gpu_x = x.to(gpu);
  ops::rope_forward(x, positions, inv_freq, scaling);
  ops::rope_forward(gpu_x, positions.to(gpu), inv_freq.to(gpu), scaling);
  EXPECT_LT(relative_error(gpu_x, x), rounding_tolerance(dtype));

  Tensor dx = random_tensor({n, heads, head_dim}, dtype, cpu, seed + 1), gpu_dx = dx.to(gpu);
  ops::rope_backward(dx, positions, inv_freq, scaling);
  ops::rope_backward(gpu_dx, positions.to(gpu), inv_freq.to(gpu), scaling);
  EXPECT_LT(relative_error(gpu_dx, dx), rounding_tolerance(dtype));
}

INSTANTIATE_TEST_SUITE_P(HeadDims, CudaRope,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16, DType::F16),
                                            ::testing::Values(int64_t(64), int64_t(128)),
                                            ::testing::Values(1.0f, 1.2f)));

class CudaSwiglu : public ::testing::TestWithParam<DType> {};

TEST_P(CudaSwiglu, ForwardAndBackwardMatchCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 37, f = 1001;
  Tensor gate = random_tensor({n, f}, dtype, cpu, seed, 3.0f), up = random_tensor({n, f}, dtype, cpu, seed + 1);
  Tensor out = Tensor::empty({n, f}, dtype), gpu_out = Tensor::empty({n, f}, dtype, gpu);
  ops::swiglu_forward(out, gate, up);
  ops::swiglu_forward(gpu_out, gate.to(gpu), up.to(gpu));
  EXPECT_LT(relative_error(gpu_out, out), rounding_tolerance(dtype));

  Tensor dout = random_tensor({n, f}, dtype, cpu, seed + 2);
  Tensor dgate = Tensor::empty({n, f}, dtype), dup = Tensor::empty({n, f}, dtype);
  Tensor gpu_dgate = Tensor::empty({n, f}, dtype, gpu), gpu_dup = Tensor::empty({n, f}, dtype, gpu);
  ops::swiglu_backward(dgate, dup, dout, gate, up);
  ops::swiglu_backward(gpu_dgate, gpu_dup, dout.to(gpu), gate.to(gpu), up.to(gpu));
  EXPECT_LT(relative_error(gpu_dgate, dgate), rounding_tolerance(dtype));
  EXPECT_LT(relative_error(gpu_dup, dup), rounding_tolerance(dtype));
}

// The stacked form (gate and up as the halves of one gemm's rows [T, 2F]) gives swiglu_forward's
// numbers on the halves bit for bit, for rows of whole packs of 4 and not (odd F, F = 2: every
// element alone), one row and many.
TEST_P(CudaSwiglu, StackedRowsAreTheHalvesApart) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (const auto [n, f] : {std::pair<int64_t, int64_t>{1, 8192}, {16, 8192}, {37, 1001}, {3, 2}, {64, 4}, {5, 36}}) {
    SCOPED_TRACE(::testing::Message() << n << " rows of " << f);
    const Tensor gate = random_tensor({n, f}, dtype, cpu, seed + f, 3.0f), up = random_tensor({n, f}, dtype, cpu, seed + n);
    const Tensor gate_up = stacked_rows({gate.view({n, 1, f}), up.view({n, 1, f})}).view({n, 2 * f});
    Tensor want = Tensor::empty({n, f}, dtype, gpu), got = Tensor::empty({n, f}, dtype, gpu);
    ops::swiglu_forward(want, gate.to(gpu), up.to(gpu));
    ops::swiglu_stacked(got, gate_up.to(gpu));
    EXPECT_EQ(host_f32(got), host_f32(want));
    Tensor cpu_out = Tensor::empty({n, f}, dtype);
    ops::swiglu_stacked(cpu_out, gate_up);
    EXPECT_LT(relative_error(got, cpu_out), rounding_tolerance(dtype));
  }
}

INSTANTIATE_TEST_SUITE_P(FloatTypes, CudaSwiglu, ::testing::Values(DType::F32, DType::BF16, DType::F16));

// logits dtype, label dtype, vocabulary (50257: GPT-2's, odd, one element per access; 200: shorter
// than one block, a multiple of 4, four per access).
class CudaCrossEntropy : public ::testing::TestWithParam<std::tuple<DType, DType, int64_t>> {};

TEST_P(CudaCrossEntropy, RowsMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, label_type, vocab] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 37;
  const float scale = 1.0f / 30;
  Tensor labels = random_ids(n, vocab, label_type, seed, 6);  // some rows ignored
  Tensor logits = random_tensor({n, vocab}, dtype, cpu, seed + 1, 4.0f);
  enum class Grad { none, in_place, bf16 };
  for (Grad mode : {Grad::none, Grad::in_place, Grad::bf16}) {
    SCOPED_TRACE(::testing::Message() << "gradient mode " << int(mode));
    Tensor z = logits.clone(), gpu_z = logits.to(gpu);
    auto grad_of = [&](Tensor& t) {
      return mode == Grad::none ? Tensor() : mode == Grad::in_place ? t : Tensor::empty(t.shape(), DType::BF16, t.device());
    };
    Tensor grad = grad_of(z), gpu_grad = grad_of(gpu_z);
    Tensor loss = Tensor::empty({n}, DType::F32), gpu_loss = Tensor::empty({n}, DType::F32, gpu);
    ops::cross_entropy_rows(loss, z, labels, scale, grad);
    ops::cross_entropy_rows(gpu_loss, gpu_z, labels.to(gpu), scale, gpu_grad);
    EXPECT_LT(relative_error(gpu_loss, loss), dtype == DType::F32 ? 1e-6 : 1e-5);
    EXPECT_LT(relative_error(gpu_z, z), rounding_tolerance(dtype));
    if (mode == Grad::bf16) {
      EXPECT_LT(relative_error(gpu_grad, grad), rounding_tolerance(DType::BF16));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaCrossEntropy,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(DType::I32, DType::I64),
                                            ::testing::Values(int64_t(50257), int64_t(200))));

class CudaLinearCrossEntropy : public ::testing::TestWithParam<DType> {};

TEST_P(CudaLinearCrossEntropy, MatchesCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 101, h = 192, vocab = 3001, chunk = 32;  // the last chunk is partial
  const float scale = 1.0f / 80;
  Tensor hidden = random_tensor({n, h}, dtype, cpu, seed);
  Tensor weight = random_tensor({vocab, h}, dtype, cpu, seed + 1, 0.1f);
  Tensor labels = random_ids(n, vocab, DType::I32, seed + 2, 5);
  Tensor loss = Tensor::empty({1}, DType::F32), gpu_loss = Tensor::empty({1}, DType::F32, gpu);
  Tensor dhidden = Tensor::empty({n, h}, dtype), gpu_dhidden = Tensor::empty({n, h}, dtype, gpu);
  // Small prior values: adding the (small) gradient to N(0, 1) would round away the digits compared.
  Tensor dweight = random_tensor({vocab, h}, DType::F32, cpu, seed + 3, 0.01f), gpu_dweight = dweight.to(gpu);
  const auto before = host_f32(dweight);
  ops::linear_cross_entropy(loss, dhidden, dweight, hidden, weight, labels, scale, chunk);
  ops::linear_cross_entropy(gpu_loss, gpu_dhidden, gpu_dweight, hidden.to(gpu), weight.to(gpu), labels.to(gpu),
                            scale, chunk);
  EXPECT_LT(relative_error(gpu_loss, loss), 1e-5);
  EXPECT_LT(relative_error(gpu_dhidden, dhidden), rounding_tolerance(dtype));
  EXPECT_LT(relative_error(added(gpu_dweight, before), added(dweight, before)), rounding_tolerance(dtype));
}

INSTANTIATE_TEST_SUITE_P(FloatTypes, CudaLinearCrossEntropy, ::testing::Values(DType::F32, DType::BF16));

// argmax_rows on the GPU equals the CPU reference: the same index (ties included, across a row's
// ranges too) and the log-softmax of it, on fresh random logits of a small and a Llama-3-sized
// vocabulary, for a decode step's few rows (each row cut into ranges) and many (a block per row).
class CudaArgmaxRows : public ::testing::TestWithParam<std::tuple<DType, int64_t, int64_t>> {};  // dtype, vocab, rows

TEST_P(CudaArgmaxRows, MatchesCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, vocab, rows] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Tensor logits = random_tensor({rows, vocab}, DType::F32, cpu, seed, 4.0f);
  float* z = logits.data_as<float>();
  const int64_t tie_row = std::min<int64_t>(2, rows - 1), late_row = rows - 1;
  z[tie_row * vocab + 5] = z[tie_row * vocab + vocab - 3] = 60.0f;  // ties across threads: the lower index wins
  z[late_row * vocab + vocab - 1] = 55.0f;
  logits = ops::cast(logits, dtype);  // rows rounded alike for both backends
  Tensor index = Tensor::empty({rows}, DType::I32), logprob = Tensor::empty({rows}, DType::F32);
  Tensor gpu_index = Tensor::empty({rows}, DType::I32, gpu), gpu_logprob = Tensor::empty({rows}, DType::F32, gpu);
  ops::argmax_rows(index, logprob, logits);
  ops::argmax_rows(gpu_index, gpu_logprob, logits.to(gpu));
  EXPECT_EQ(gpu_index.to(cpu).to_vector<int32_t>(), index.to_vector<int32_t>());
  EXPECT_EQ(index.to_vector<int32_t>()[tie_row], 5);
  EXPECT_LT(relative_error(gpu_logprob, logprob), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaArgmaxRows,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(int64_t(200), int64_t(9000), int64_t(128256)),
                                            ::testing::Values(int64_t(1), int64_t(3), int64_t(16), int64_t(37),
                                                              int64_t(300))));

// The fused residual add + RMSNorm equals the two ops it replaces bit for bit on the GPU, and the
// CPU reference within the dtype's tolerance.
class CudaAddRmsNorm : public ::testing::TestWithParam<std::tuple<DType, int64_t>> {};

TEST_P(CudaAddRmsNorm, EqualsAddThenRmsNorm) {
  TS_REQUIRE_GPU();
  const auto [dtype, d] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 19;
  Tensor a = random_tensor({rows, d}, dtype, gpu, seed), b = random_tensor({rows, d}, dtype, gpu, seed + 1);
  Tensor w = random_tensor({d}, dtype, gpu, seed + 2);
  Tensor sum = Tensor::empty({rows, d}, dtype, gpu), out = Tensor::empty({rows, d}, dtype, gpu);
  Tensor rstd = Tensor::empty({rows}, DType::F32, gpu);
  ops::add_rmsnorm_forward(sum, out, rstd, a, b, w, 1e-5f);
  Tensor sum2 = Tensor::empty({rows, d}, dtype, gpu), out2 = Tensor::empty({rows, d}, dtype, gpu);
  Tensor rstd2 = Tensor::empty({rows}, DType::F32, gpu);
  ops::add(sum2, a, b);
  ops::rmsnorm_forward(out2, rstd2, sum2, w, 1e-5f);
  EXPECT_EQ(host_f32(sum), host_f32(sum2));
  EXPECT_EQ(host_f32(out), host_f32(out2));
  EXPECT_EQ(host_f32(rstd), host_f32(rstd2));
  Tensor cs = Tensor::empty({rows, d}, dtype), co = Tensor::empty({rows, d}, dtype), cr = Tensor::empty({rows}, DType::F32);
  ops::add_rmsnorm_forward(cs, co, cr, a.to(cpu), b.to(cpu), w.to(cpu), 1e-5f);
  EXPECT_LT(relative_error(out, co), rounding_tolerance(dtype));
  EXPECT_LT(relative_error(rstd, cr), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAddRmsNorm,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(int64_t(2048), int64_t(200))));

// RoPE of q and k in one launch equals the two rope_forward calls bit for bit, and the CPU.
TEST(CudaRopeQk, EqualsTwoRopeForwards) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 13, d = 64;
  Tensor q = random_tensor({n, 32, d}, DType::BF16, gpu, seed), k = random_tensor({n, 8, d}, DType::BF16, gpu, seed + 1);
  Tensor positions = random_ids(n, 5000, DType::I32, seed + 2).to(gpu);
  Tensor freq = inverse_frequencies(d, 500000.0).to(gpu);
  Tensor q2 = q.clone(), k2 = k.clone(), cq = q.to(cpu), ck = k.to(cpu);
  ops::rope_forward_qk(q, k, positions, freq, 1.0f);
  ops::rope_forward(q2, positions, freq, 1.0f);
  ops::rope_forward(k2, positions, freq, 1.0f);
  EXPECT_EQ(host_f32(q), host_f32(q2));
  EXPECT_EQ(host_f32(k), host_f32(k2));
  ops::rope_forward_qk(cq, ck, positions.to(cpu), freq.to(cpu), 1.0f);
  EXPECT_LT(relative_error(q, cq), rounding_tolerance(DType::BF16));
  EXPECT_LT(relative_error(k, ck), rounding_tolerance(DType::BF16));
}
