// The CPU reference of the transformer ops against naive loops written independently here, and
// every backward op against central differences of its forward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/error.h"
#include "kernels/ops.h"
#include "finite_differences.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device cpu = Device::cpu();

std::vector<int64_t> ids_of(const Tensor& t) {
  if (t.dtype() == DType::I64) return t.to_vector<int64_t>();
  auto v = t.to_vector<int32_t>();
  return {v.begin(), v.end()};
}

std::vector<float> minus(std::vector<float> a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
  return a;
}

float round_bf16(float v) { return bf16_bits_to_f32(f32_to_bf16_bits(v)); }

constexpr double kFiniteDifferenceTolerance = 2e-3;

}  // namespace

// ---- embedding ----

class CpuEmbedding : public ::testing::TestWithParam<DType> {};

TEST_P(CpuEmbedding, GathersRowsAndScatterAddsGradients) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 23, vocab = 7, h = 5;  // more tokens than rows: ids repeat
  Tensor ids = random_ids(n, vocab, GetParam(), seed);
  Tensor weight = random_tensor({vocab, h}, DType::F32, cpu, seed + 1);
  Tensor out = Tensor::empty({n, h}, DType::F32);
  ops::embedding_forward(out, weight, ids);
  const auto w = host_f32(weight), y = host_f32(out);
  const auto id = ids_of(ids);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) ASSERT_EQ(y[i * h + j], w[id[i] * h + j]);

  Tensor dout = random_tensor({n, h}, DType::F32, cpu, seed + 2);
  Tensor dweight = random_tensor({vocab, h}, DType::F32, cpu, seed + 3);
  const auto before = host_f32(dweight), r = host_f32(dout);
  ops::embedding_backward(dweight, dout, ids);
  std::vector<double> want(before.begin(), before.end());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) want[id[i] * h + j] += r[i * h + j];
  EXPECT_LT(relative_error(host_f32(dweight), std::vector<float>(want.begin(), want.end())), 1e-6);

  const auto numeric = central_differences(weight, [&] {
    ops::embedding_forward(out, weight, ids);
    return weighted_sum(out, r);
  });
  EXPECT_LT(relative_error(minus(host_f32(dweight), before), numeric), kFiniteDifferenceTolerance);
}

INSTANTIATE_TEST_SUITE_P(IdTypes, CpuEmbedding, ::testing::Values(DType::I32, DType::I64));

TEST(CpuEmbedding, RejectsIdsOutsideTheVocabulary) {
  Tensor weight = random_tensor({4, 3}, DType::F32, cpu, fresh_seed());
  Tensor out = Tensor::empty({2, 3}, DType::F32), dweight = Tensor::empty({4, 3}, DType::F32);
  for (int32_t bad : {4, -1}) {
    Tensor ids = Tensor::from_vector(std::vector<int32_t>{1, bad}, {2}, DType::I32);
    EXPECT_THROW(ops::embedding_forward(out, weight, ids), Error);
    EXPECT_THROW(ops::embedding_backward(dweight, out, ids), Error);
  }
  Tensor ids = Tensor::from_vector(std::vector<int32_t>{1, 2}, {2}, DType::I32);
  EXPECT_THROW(ops::embedding_forward(Tensor::empty({2, 3}, DType::BF16), weight, ids), Error);
  EXPECT_THROW(ops::embedding_backward(Tensor::empty({4, 3}, DType::BF16), out, ids), Error);
}

// ---- RMSNorm ----

TEST(CpuRmsNorm, MatchesNaiveLoops) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 9, d = 33;
  const float eps = 1e-5f;
  Tensor x = random_tensor({3, 3, d}, DType::F32, cpu, seed, 2.0f);  // leading dims flatten to rows
  Tensor weight = random_tensor({d}, DType::F32, cpu, seed + 1);
  Tensor out = Tensor::empty({3, 3, d}, DType::F32), rstd = Tensor::empty({n}, DType::F32);
  ops::rmsnorm_forward(out, rstd, x, weight, eps);
  const auto xv = host_f32(x), w = host_f32(weight);
  std::vector<float> want(n * d), want_rstd(n);
  for (int64_t i = 0; i < n; ++i) {
    double ms = 0;
    for (int64_t j = 0; j < d; ++j) ms += double(xv[i * d + j]) * xv[i * d + j] / d;
    want_rstd[i] = float(1 / std::sqrt(ms + eps));
    for (int64_t j = 0; j < d; ++j) want[i * d + j] = float(xv[i * d + j] / std::sqrt(ms + eps) * w[j]);
  }
  EXPECT_LT(relative_error(host_f32(out), want), 1e-6);
  EXPECT_LT(relative_error(host_f32(rstd), want_rstd), 1e-6);
}

// HF: weight * hidden.to(bf16): the normalised value is rounded to bf16 before the product.
TEST(CpuRmsNorm, RoundsLikeHfInBf16) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 5, d = 64;
  Tensor x = random_tensor({n, d}, DType::BF16, cpu, seed);
  for (DType wtype : {DType::BF16, DType::F32}) {
    Tensor weight = random_tensor({d}, wtype, cpu, seed + 1);
    Tensor out = Tensor::empty({n, d}, DType::BF16), rstd = Tensor::empty({n}, DType::F32);
    ops::rmsnorm_forward(out, rstd, x, weight, 1e-6f);
    const auto xv = host_f32(x), w = host_f32(weight), r = host_f32(rstd), y = host_f32(out);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j)
        ASSERT_EQ(y[i * d + j], round_bf16(round_bf16(xv[i * d + j] * r[i]) * w[j])) << i << ", " << j;
  }
}

TEST(CpuRmsNorm, BackwardMatchesFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 3, d = 8;
  Tensor x = random_tensor({n, d}, DType::F32, cpu, seed);
  Tensor weight = random_tensor({d}, DType::F32, cpu, seed + 1);
  Tensor dout = random_tensor({n, d}, DType::F32, cpu, seed + 2);
  Tensor out = Tensor::empty({n, d}, DType::F32), rstd = Tensor::empty({n}, DType::F32);
  const auto r = host_f32(dout);
  auto loss = [&] {
    ops::rmsnorm_forward(out, rstd, x, weight, 1e-5f);
    return weighted_sum(out, r);
  };
  loss();
  Tensor dx = Tensor::empty({n, d}, DType::F32), dweight = random_tensor({d}, DType::F32, cpu, seed + 3);
  const auto dweight_before = host_f32(dweight);
  ops::rmsnorm_backward(dx, dweight, dout, x, weight, rstd);
  EXPECT_LT(relative_error(host_f32(dx), central_differences(x, loss)), kFiniteDifferenceTolerance);
  EXPECT_LT(relative_error(minus(host_f32(dweight), dweight_before), central_differences(weight, loss)),
            kFiniteDifferenceTolerance);
}

// ---- RoPE ----

class CpuRope : public ::testing::TestWithParam<float> {};  // attention_scaling

TEST_P(CpuRope, MatchesNaiveRotationAndItsTranspose) {
  const float scaling = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 6, heads = 3, d = 8, half = d / 2;
  Tensor x = random_tensor({n, heads, d}, DType::F32, cpu, seed);
  Tensor positions = Tensor::from_vector(std::vector<int32_t>{0, 1, 2, 0, 1, 4097}, {n}, DType::I32);  // restarts
  std::vector<float> freq(half);
  for (int64_t i = 0; i < half; ++i) freq[i] = float(1.0 / std::pow(10000.0, 2.0 * i / d));
  Tensor inv_freq = Tensor::from_vector(freq, {half}, DType::F32);
  const auto before = host_f32(x);
  ops::rope_forward(x, positions, inv_freq, scaling);
  const auto pos = positions.to_vector<int32_t>();
  std::vector<float> want(before.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = double(float(pos[t]) * freq[i]), c = std::cos(angle) * scaling,
                     s = std::sin(angle) * scaling;
        const int64_t a = (t * heads + h) * d + i, b = a + half;
        want[a] = float(before[a] * c - before[b] * s);
        want[b] = float(before[b] * c + before[a] * s);
      }
  EXPECT_LT(relative_error(host_f32(x), want), 1e-6);

  // Backward is the transpose: for the linear map y = R x, d sum(y * g) / dx = R^T g.
  Tensor g = random_tensor({n, heads, d}, DType::F32, cpu, seed + 1);
  const auto gv = host_f32(g);
  Tensor probe = random_tensor({n, heads, d}, DType::F32, cpu, seed + 2), y = Tensor::empty({n, heads, d}, DType::F32);
  const auto numeric = central_differences(probe, [&] {
    copy_bytes(y, probe);
    ops::rope_forward(y, positions, inv_freq, scaling);
    return weighted_sum(y, gv);
  });
  ops::rope_backward(g, positions, inv_freq, scaling);
  EXPECT_LT(relative_error(host_f32(g), numeric), kFiniteDifferenceTolerance);
}

INSTANTIATE_TEST_SUITE_P(Scalings, CpuRope, ::testing::Values(1.0f, 1.25f));

// HF rounds cos and sin to bf16, then each product and the sum of q * cos + rotate_half(q) * sin.
TEST(CpuRope, RoundsLikeHfInBf16) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 3, d = 16, half = d / 2;
  const float scaling = 1.1f;
  Tensor x = random_tensor({n, 1, d}, DType::BF16, cpu, seed);
  const auto before = host_f32(x);
  std::vector<int32_t> pos{5, 0, 1000};
  std::vector<float> freq(half);
  for (int64_t i = 0; i < half; ++i) freq[i] = float(1.0 / std::pow(500000.0, 2.0 * i / d));
  Tensor inv_freq = Tensor::from_vector(freq, {half}, DType::F32);
  ops::rope_forward(x, Tensor::from_vector(pos, {n}, DType::I32), inv_freq, scaling);
  const auto y = host_f32(x);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(pos[t]) * freq[i];
      const float c = round_bf16(std::cos(angle) * scaling), s = round_bf16(std::sin(angle) * scaling);
      const float x1 = before[t * d + i], x2 = before[t * d + i + half];
      ASSERT_EQ(y[t * d + i], round_bf16(round_bf16(x1 * c) - round_bf16(x2 * s))) << t << ", " << i;
      ASSERT_EQ(y[t * d + i + half], round_bf16(round_bf16(x2 * c) + round_bf16(x1 * s))) << t << ", " << i;
    }
}

TEST(CpuRope, RejectsBadShapes) {
  Tensor inv_freq = Tensor::empty({4}, DType::F32);
  Tensor positions = Tensor::from_vector(std::vector<int32_t>{0, 1}, {2}, DType::I32);
  EXPECT_THROW(ops::rope_forward(Tensor::empty({2, 1, 7}, DType::F32), positions, inv_freq, 1), Error);
  EXPECT_THROW(ops::rope_forward(Tensor::empty({2, 1, 6}, DType::F32), positions, inv_freq, 1), Error);
  EXPECT_THROW(ops::rope_forward(Tensor::empty({3, 1, 8}, DType::F32), positions, inv_freq, 1), Error);
  EXPECT_THROW(ops::rope_forward(Tensor::empty({2, 8}, DType::F32), positions, inv_freq, 1), Error);
}

// ---- SwiGLU ----

TEST(CpuSwiglu, MatchesNaiveLoopsAndFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 4, f = 7;
  Tensor gate = random_tensor({n, f}, DType::F32, cpu, seed, 3.0f);
  Tensor up = random_tensor({n, f}, DType::F32, cpu, seed + 1);
  Tensor out = Tensor::empty({n, f}, DType::F32);
  ops::swiglu_forward(out, gate, up);
  const auto g = host_f32(gate), u = host_f32(up);
  std::vector<float> want(n * f);
  for (int64_t i = 0; i < n * f; ++i) want[i] = float(g[i] / (1 + std::exp(-double(g[i]))) * u[i]);
  EXPECT_LT(relative_error(host_f32(out), want), 1e-6);

  Tensor dout = random_tensor({n, f}, DType::F32, cpu, seed + 2);
  const auto r = host_f32(dout);
  auto loss = [&] {
    ops::swiglu_forward(out, gate, up);
    return weighted_sum(out, r);
  };
  Tensor dgate = Tensor::empty({n, f}, DType::F32), dup = Tensor::empty({n, f}, DType::F32);
  ops::swiglu_backward(dgate, dup, dout, gate, up);
  EXPECT_LT(relative_error(host_f32(dgate), central_differences(gate, loss)), kFiniteDifferenceTolerance);
  EXPECT_LT(relative_error(host_f32(dup), central_differences(up, loss)), kFiniteDifferenceTolerance);
}

// HF: act_fn(gate) * up in bf16 rounds silu(gate) to bf16 before the product.
TEST(CpuSwiglu, RoundsLikeHfInBf16) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Tensor gate = random_tensor({300}, DType::BF16, cpu, seed, 3.0f);
  Tensor up = random_tensor({300}, DType::BF16, cpu, seed + 1);
  Tensor out = Tensor::empty({300}, DType::BF16);
  ops::swiglu_forward(out, gate, up);
  const auto g = host_f32(gate), u = host_f32(up), y = host_f32(out);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(y[i], round_bf16(round_bf16(g[i] / (1.0f + std::exp(-g[i]))) * u[i])) << i;
}

// ---- cross-entropy ----

class CpuCrossEntropy : public ::testing::TestWithParam<DType> {};  // label dtype

TEST_P(CpuCrossEntropy, RowsMatchNaiveLossAndFiniteDifferences) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 7, vocab = 11;
  const float scale = 0.37f;
  Tensor labels = random_ids(n, vocab, GetParam(), seed, 3);  // rows 1 and 4 ignored
  Tensor logits = random_tensor({n, vocab}, DType::F32, cpu, seed + 1, 3.0f);
  const auto z = host_f32(logits);
  const auto y = ids_of(labels);
  std::vector<float> want(n, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] == -100) continue;
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(z[i * vocab + v]));
    want[i] = float(std::log(sum) - z[i * vocab + y[i]]);
  }
  Tensor loss = Tensor::empty({n}, DType::F32);
  ops::cross_entropy_rows(loss, logits, labels, scale, Tensor());
  EXPECT_LT(relative_error(host_f32(loss), want), 1e-6);
  EXPECT_EQ(host_f32(logits), z) << "logits untouched without write_grad";

  Tensor probe = logits.clone(), scratch = logits.clone();
  const auto numeric = central_differences(probe, [&] {
    copy_bytes(scratch, probe);
    ops::cross_entropy_rows(loss, scratch, labels, scale, Tensor());
    return scale * weighted_sum(loss, std::vector<float>(n, 1.0f));
  });
  ops::cross_entropy_rows(loss, logits, labels, scale, logits);  // in place
  EXPECT_LT(relative_error(host_f32(loss), want), 1e-6);
  const auto grad = host_f32(logits);
  EXPECT_LT(relative_error(grad, numeric), kFiniteDifferenceTolerance);
  for (int64_t v = 0; v < vocab; ++v) EXPECT_EQ(grad[1 * vocab + v], 0.0f) << "ignored rows get no gradient";
}

INSTANTIATE_TEST_SUITE_P(LabelTypes, CpuCrossEntropy, ::testing::Values(DType::I32, DType::I64));

TEST(CpuCrossEntropy, RejectsLabelsOutsideTheVocabulary) {
  Tensor logits = random_tensor({2, 5}, DType::F32, cpu, fresh_seed()), loss = Tensor::empty({2}, DType::F32);
  for (int64_t bad : {5, -1, -101}) {
    Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, bad}, {2}, DType::I64);
    EXPECT_THROW(ops::cross_entropy_rows(loss, logits, labels, 1, logits), Error);
  }
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 1}, {2}, DType::I64);
  EXPECT_THROW(ops::cross_entropy_rows(Tensor::empty({3}, DType::F32), logits, labels, 1, logits), Error);
}

// The chunked driver against full logits: loss = sum_n lse_n - z[n, y_n]; with
// G = (softmax(Z) - onehot) * scale, dhidden = G W and dweight += G^T hidden.
class CpuLinearCrossEntropy : public ::testing::TestWithParam<std::tuple<DType, int64_t>> {};

TEST_P(CpuLinearCrossEntropy, MatchesFullLogits) {
  const auto [dtype, chunk] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 13, h = 16, vocab = 29;
  const float scale = 1.0f / 11;
  Tensor hidden = random_tensor({n, h}, dtype, cpu, seed);
  Tensor weight = random_tensor({vocab, h}, dtype, cpu, seed + 1, 0.5f);
  Tensor labels = random_ids(n, vocab, DType::I64, seed + 2, 5);
  const auto x = host_f32(hidden), w = host_f32(weight);
  const auto y = ids_of(labels);
  double want_loss = 0;
  std::vector<double> grad(n * vocab, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] == -100) continue;
    std::vector<double> z(vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      for (int64_t k = 0; k < h; ++k) z[v] += double(x[i * h + k]) * w[v * h + k];
      sum += std::exp(z[v]);
    }
    want_loss += std::log(sum) - z[y[i]];
    for (int64_t v = 0; v < vocab; ++v) grad[i * vocab + v] = (std::exp(z[v]) / sum - (v == y[i])) * scale;
  }
  std::vector<float> want_dh(n * h, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < h; ++k) {
      double acc = 0;
      for (int64_t v = 0; v < vocab; ++v) acc += grad[i * vocab + v] * w[v * h + k];
      want_dh[i * h + k] = float(acc);
    }
  std::vector<float> want_dw(vocab * h);
  for (int64_t v = 0; v < vocab; ++v)
    for (int64_t k = 0; k < h; ++k) {
      double acc = 0;
      for (int64_t i = 0; i < n; ++i) acc += grad[i * vocab + v] * x[i * h + k];
      want_dw[v * h + k] = float(acc);
    }
  Tensor dweight = random_tensor({vocab, h}, DType::F32, cpu, seed + 3);  // accumulated into
  const auto dweight_before = host_f32(dweight);

  const double tol = dtype == DType::F32 ? 1e-5 : 1e-2;  // bf16: the logit gradient is rounded
  Tensor loss_sum = Tensor::empty({1}, DType::F32), dhidden = Tensor::empty({n, h}, dtype);
  ops::linear_cross_entropy(loss_sum, dhidden, dweight, hidden, weight, labels, scale, chunk);
  EXPECT_NEAR(loss_sum.to_vector<float>()[0], want_loss, 1e-5 * std::abs(want_loss));
  EXPECT_LT(relative_error(host_f32(dhidden), want_dh), tol);
  EXPECT_LT(relative_error(minus(host_f32(dweight), dweight_before), want_dw), tol);

  // Either gradient may be skipped, and the loss alone needs neither.
  Tensor dh_only = Tensor::empty({n, h}, DType::F32);
  ops::linear_cross_entropy(loss_sum, dh_only, Tensor(), hidden, weight, labels, scale, chunk);
  EXPECT_LT(relative_error(host_f32(dh_only), want_dh), tol);
  Tensor dw_only = Tensor::empty({vocab, h}, DType::F32);
  ops::fill(dw_only, 0.0f);
  ops::linear_cross_entropy(loss_sum, Tensor(), dw_only, hidden, weight, labels, scale, chunk);
  EXPECT_LT(relative_error(host_f32(dw_only), want_dw), tol);
  ops::fill(loss_sum, 0.0f);
  ops::linear_cross_entropy(loss_sum, Tensor(), Tensor(), hidden, weight, labels, scale, chunk);
  EXPECT_NEAR(loss_sum.to_vector<float>()[0], want_loss, 1e-5 * std::abs(want_loss));
}

INSTANTIATE_TEST_SUITE_P(DtypesAndChunks, CpuLinearCrossEntropy,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(int64_t(1), int64_t(4), int64_t(13), int64_t(100))));

TEST(CpuLinearCrossEntropy, RejectsMismatchedArguments) {
  Tensor hidden = Tensor::empty({3, 4}, DType::F32), weight = Tensor::empty({5, 4}, DType::F32);
  Tensor labels = Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {3}, DType::I32);
  Tensor loss_sum = Tensor::empty({1}, DType::F32);
  EXPECT_THROW(ops::linear_cross_entropy(loss_sum, Tensor(), Tensor(), hidden, Tensor::empty({5, 4}, DType::BF16),
                                         labels, 1, 2),
               Error);
  EXPECT_THROW(ops::linear_cross_entropy(loss_sum, Tensor(), Tensor::empty({5, 4}, DType::BF16), hidden, weight,
                                         labels, 1, 2),
               Error);
  EXPECT_THROW(ops::linear_cross_entropy(loss_sum, Tensor::empty({3, 5}, DType::F32), Tensor(), hidden, weight,
                                         labels, 1, 2),
               Error);
  EXPECT_THROW(ops::linear_cross_entropy(loss_sum, Tensor(), Tensor(), hidden, weight, labels, 1, 0), Error);
}

// argmax_rows: the first maximum of each row (ties go to the lower index) and its log-softmax,
// checked against a direct computation in double.
TEST(ArgmaxRows, FirstMaximumAndItsLogSoftmax) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 5, vocab = 1003;
  Tensor logits = random_tensor({rows, vocab}, DType::F32, cpu, seed, 3.0f);
  float* z = logits.data_as<float>();
  z[1 * vocab + 17] = z[1 * vocab + 900] = 50.0f;  // a tie: 17 wins
  z[3 * vocab + vocab - 1] = 40.0f;                // the last column
  Tensor index = Tensor::empty({rows}, DType::I32), logprob = Tensor::empty({rows}, DType::F32);
  ops::argmax_rows(index, logprob, logits);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = z + r * vocab;
    int64_t best = 0;
    for (int64_t v = 0; v < vocab; ++v)
      if (row[v] > row[best]) best = v;
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - row[best]);
    EXPECT_EQ(index.data_as<int32_t>()[r], best) << "row " << r;
    EXPECT_NEAR(logprob.data_as<float>()[r], -std::log(sum), 1e-5) << "row " << r;
  }
  EXPECT_EQ(index.data_as<int32_t>()[1], 17);
  EXPECT_EQ(index.data_as<int32_t>()[3], vocab - 1);
  EXPECT_NEAR(logprob.data_as<float>()[1], -std::log(2.0), 1e-5);  // two equal maxima far above the rest

  Tensor wrong = Tensor::empty({rows}, DType::I64);
  EXPECT_THROW(ops::argmax_rows(wrong, logprob, logits), Error);
}

// add_rmsnorm_forward: the residual sum rounded as ops::add rounds it, then RMSNorm of the sum,
// against a direct computation (bf16 rounding of the sum included).
TEST(CpuRmsNorm, FusedResidualAddEqualsAddThenNorm) {
  auto round_as = [](DType dtype, float v) { return dtype == DType::BF16 ? bf16_bits_to_f32(f32_to_bf16_bits(v)) : v; };
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 3, d = 40;
  for (DType dtype : {DType::F32, DType::BF16}) {
    Tensor a = random_tensor({rows, d}, dtype, cpu, seed), b = random_tensor({rows, d}, dtype, cpu, seed + 1);
    Tensor w = random_tensor({d}, DType::F32, cpu, seed + 2);
    Tensor sum = Tensor::empty({rows, d}, dtype), out = Tensor::empty({rows, d}, dtype);
    Tensor rstd = Tensor::empty({rows}, DType::F32);
    ops::add_rmsnorm_forward(sum, out, rstd, a, b, w, 1e-6f);
    const auto av = host_f32(a), bv = host_f32(b), wv = host_f32(w), sv = host_f32(sum), ov = host_f32(out);
    for (int64_t n = 0; n < rows; ++n) {
      double squares = 0;
      for (int64_t j = 0; j < d; ++j) {
        const float s = round_as(dtype, av[n * d + j] + bv[n * d + j]);
        EXPECT_EQ(sv[n * d + j], s);
        squares += double(s) * s;
      }
      const float r = static_cast<float>(1.0 / std::sqrt(squares / d + 1e-6));
      EXPECT_NEAR(rstd.data_as<float>()[n], r, 1e-6 * r);
      for (int64_t j = 0; j < d; ++j)
        EXPECT_NEAR(ov[n * d + j], round_as(dtype, round_as(dtype, sv[n * d + j] * r) * wv[j]),
                    dtype == DType::F32 ? 1e-5 : 2e-2);
    }
    Tensor wrong = Tensor::empty({rows, d + 1}, dtype);
    EXPECT_THROW(ops::add_rmsnorm_forward(sum, out, rstd, a, wrong, w, 1e-6f), Error);
  }
}

TEST(CpuRope, QkInOnePassEqualsEachAlone) {
  const uint64_t seed = fresh_seed();
  const int64_t n = 5, d = 16;
  Tensor q = random_tensor({n, 4, d}, DType::F32, cpu, seed), k = random_tensor({n, 2, d}, DType::F32, cpu, seed + 1);
  Tensor positions = random_ids(n, 100, DType::I32, seed + 2);
  std::vector<float> freq(d / 2);
  for (int64_t i = 0; i < d / 2; ++i) freq[i] = float(std::pow(10000.0, -2.0 * i / d));
  const Tensor inv = Tensor::from_vector(freq, {d / 2}, DType::F32);
  Tensor q2 = q.clone(), k2 = k.clone();
  ops::rope_forward_qk(q, k, positions, inv, 1.0f);
  ops::rope_forward(q2, positions, inv, 1.0f);
  ops::rope_forward(k2, positions, inv, 1.0f);
  EXPECT_EQ(q.to_vector<float>(), q2.to_vector<float>());
  EXPECT_EQ(k.to_vector<float>(), k2.to_vector<float>());
  EXPECT_NE(q.to_vector<float>(), random_tensor({n, 4, d}, DType::F32, cpu, seed).to_vector<float>()) << "q turned";
  Tensor k_odd = Tensor::empty({n, 2, d + 2}, DType::F32);
  EXPECT_THROW(ops::rope_forward_qk(q, k_odd, positions, inv, 1.0f), Error);
}
