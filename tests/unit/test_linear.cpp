// Linear (model/linear.h): the forward against y = x W^T + b + s (drop(x) A^T) B^T written out
// in double here, the backward against central differences of the forward, frozen tensors getting
// no gradient; and the ops of its section of the op table (column sums, counter-based dropout).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "core/rng.h"
#include "kernels/ops.h"
#include "model/linear.h"
#include "finite_differences.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

constexpr int64_t kRows = 6, kIn = 5, kOut = 4, kRank = 3;

Linear random_linear(uint64_t seed, bool lora) {
  Linear l;
  l.weight = random_tensor({kOut, kIn}, DType::F32, Device::cpu(), seed);
  l.bias = random_tensor({kOut}, DType::F32, Device::cpu(), seed + 1);
  if (lora) {
    l.lora_a = random_tensor({kRank, kIn}, DType::F32, Device::cpu(), seed + 2);
    l.lora_b = random_tensor({kOut, kRank}, DType::F32, Device::cpu(), seed + 3);
    l.lora_scale = 0.75f;
  }
  return l;
}

// Gradient buffers (zeros) for the tensors of `l`, frozen ones left out.
Linear zero_grads(const Linear& l, bool frozen_weight) {
  auto zeros = [](const Tensor& t) {
    if (!t.defined()) return Tensor();
    Tensor g = Tensor::empty(t.shape(), DType::F32);
    ops::fill(g, 0.0f);
    return g;
  };
  Linear g;
  if (!frozen_weight) g.weight = zeros(l.weight);
  g.bias = zeros(l.bias);
  g.lora_a = zeros(l.lora_a);
  g.lora_b = zeros(l.lora_b);
  return g;
}

}  // namespace

TEST(ColumnSum, MatchesNaiveSums) {
  const uint64_t seed = fresh_seed();
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " seed " << seed);
    const Tensor in = random_tensor({3, 7, 5}, dtype, Device::cpu(), seed);
    const std::vector<float> x = host_f32(in);
    Tensor out = Tensor::from_vector<float>({1, 2, 3, 4, 5}, {5}, DType::F32);
    ops::column_sum(out, in, /*accumulate=*/true);
    const std::vector<float> got = out.to_vector<float>();
    for (int64_t j = 0; j < 5; ++j) {
      double want = static_cast<double>(j + 1);
      for (int64_t i = 0; i < 21; ++i) want += x[i * 5 + j];
      EXPECT_NEAR(got[j], want, 1e-5 * (1 + std::abs(want))) << "column " << j;
    }
    ops::column_sum(out, in);  // written, not added
    for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(out.to_vector<float>()[j], got[j] - (j + 1), 1e-5) << "column " << j;
  }
}

TEST(Dropout, KeepsOneMinusPAndScalesWhatItKeeps) {
  const uint64_t seed = fresh_seed();
  const int64_t n = 100000;
  const float p = 0.3f;
  const Tensor x = random_tensor({n}, DType::F32, Device::cpu(), seed);
  Tensor y = Tensor::empty({n}, DType::F32);
  ops::dropout(y, x, p, seed, 1000);
  const auto xs = x.to_vector<float>(), ys = y.to_vector<float>();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = rng::uniform(seed, 1000 + i) >= p;
    kept += keep;
    ASSERT_EQ(ys[i], keep ? xs[i] * (1.0f / (1.0f - p)) : 0.0f) << "element " << i << " seed " << seed;
  }
  EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 0.01) << "seed " << seed;
  // Counter-based: a part of the tensor, given the counter of its first element, gets the same
  // mask as it had inside the whole (what makes N ranks give what one rank gives); in place too.
  Tensor part = x.flat_slice(400, 600).clone();
  ops::dropout(part, part, p, seed, 1400);
  EXPECT_EQ(part.to_vector<float>(), std::vector<float>(ys.begin() + 400, ys.begin() + 1000));
}

TEST(Linear, ForwardIsBaseAndScaledLoraProduct) {
  const uint64_t seed = fresh_seed();
  const Linear l = random_linear(seed, /*lora=*/true);
  const Tensor x = random_tensor({kRows, kIn}, DType::F32, Device::cpu(), seed + 9);
  const LoraDropout drop{0.4f, seed, 77};
  Tensor xa;
  const Tensor y = l.forward(x, &xa, drop);
  const auto X = x.to_vector<float>(), W = l.weight.to_vector<float>(), b = l.bias.to_vector<float>();
  const auto A = l.lora_a.to_vector<float>(), B = l.lora_b.to_vector<float>();
  std::vector<double> dropped(X.size());
  for (size_t i = 0; i < X.size(); ++i) dropped[i] = rng::uniform(seed, 77 + i) >= 0.4f ? X[i] / 0.6 : 0.0;
  const auto got = y.to_vector<float>();
  for (int64_t t = 0; t < kRows; ++t) {
    for (int64_t o = 0; o < kOut; ++o) {
      double want = b[o];
      for (int64_t i = 0; i < kIn; ++i) want += double(X[t * kIn + i]) * W[o * kIn + i];
      for (int64_t r = 0; r < kRank; ++r) {
        double u = 0;
        for (int64_t i = 0; i < kIn; ++i) u += dropped[t * kIn + i] * A[r * kIn + i];
        want += 0.75 * u * B[o * kRank + r];
      }
      EXPECT_NEAR(got[t * kOut + o], want, 1e-4 * (1 + std::abs(want))) << t << ", " << o << " seed " << seed;
    }
  }
  EXPECT_EQ(xa.shape(), (Shape{kRows, kRank}));
}

// Every gradient of a LoRA projection with dropout against central differences of the forward.
TEST(Linear, BackwardMatchesCentralDifferences) {
  const uint64_t seed = fresh_seed();
  for (float p : {0.0f, 0.5f}) {
    SCOPED_TRACE(::testing::Message() << "dropout " << p << " seed " << seed);
    const Linear l = random_linear(seed, /*lora=*/true);
    const Tensor x = random_tensor({kRows, kIn}, DType::F32, Device::cpu(), seed + 9);
    const LoraDropout drop{p, seed + 5, 3};
    std::vector<float> r = host_f32(random_tensor({kRows * kOut}, DType::F32, Device::cpu(), seed + 11));
    auto loss = [&] { return weighted_sum(l.forward(x, nullptr, drop), r); };

    Tensor xa;
    l.forward(x, &xa, drop);
    Linear g = zero_grads(l, false);
    Tensor dx = Tensor::empty({kRows, kIn}, DType::F32);
    l.backward(Tensor::from_vector(r, {kRows, kOut}, DType::F32), x, xa, g, dx, false, drop);
    const std::pair<const char*, std::pair<Tensor, Tensor>> cases[] = {
        {"x", {x, dx}}, {"weight", {l.weight, g.weight}}, {"bias", {l.bias, g.bias}},
        {"lora_a", {l.lora_a, g.lora_a}}, {"lora_b", {l.lora_b, g.lora_b}}};
    for (const auto& [name, tensors] : cases)
      EXPECT_LT(relative_error(host_f32(tensors.second), central_differences(tensors.first, loss, 1e-2f)), 2e-3) << name;
  }
}

// A frozen weight: no gradient buffer, so no dW; dx, the bias and adapter gradients are those of
// the trainable case; an accumulated dx adds to what is there.
TEST(Linear, FrozenWeightGetsNoGradientAndTheInputGradientStillFlows) {
  const uint64_t seed = fresh_seed();
  const Linear l = random_linear(seed, /*lora=*/true);
  const Tensor x = random_tensor({kRows, kIn}, DType::F32, Device::cpu(), seed + 9);
  const Tensor dy = random_tensor({kRows, kOut}, DType::F32, Device::cpu(), seed + 10);
  Tensor xa;
  l.forward(x, &xa);
  Linear full = zero_grads(l, false), frozen = zero_grads(l, true);
  Tensor dx_full = Tensor::empty({kRows, kIn}, DType::F32), dx_frozen = random_tensor({kRows, kIn}, DType::F32, Device::cpu(), seed);
  const std::vector<float> before = dx_frozen.to_vector<float>();
  l.backward(dy, x, xa, full, dx_full, false);
  l.backward(dy, x, xa, frozen, dx_frozen, /*accumulate_dx=*/true);
  EXPECT_FALSE(frozen.weight.defined());
  std::vector<float> added = dx_frozen.to_vector<float>();
  for (size_t i = 0; i < added.size(); ++i) added[i] -= before[i];
  EXPECT_LT(relative_error(added, dx_full.to_vector<float>()), 1e-6) << "seed " << seed;
  EXPECT_EQ(frozen.bias.to_vector<float>(), full.bias.to_vector<float>());
  EXPECT_EQ(frozen.lora_a.to_vector<float>(), full.lora_a.to_vector<float>());
  EXPECT_EQ(frozen.lora_b.to_vector<float>(), full.lora_b.to_vector<float>());
  // Without LoRA and without a gradient for anything, backward is one product: dx = dy W.
  const Linear plain = random_linear(seed, /*lora=*/false);
  Linear none;
  Tensor dx = Tensor::empty({kRows, kIn}, DType::F32), want = Tensor::empty({kRows, kIn}, DType::F32);
  plain.backward(dy, x, Tensor(), none, dx, false);
  ops::gemm(want, dy, plain.weight);
  EXPECT_EQ(dx.to_vector<float>(), want.to_vector<float>());
}
