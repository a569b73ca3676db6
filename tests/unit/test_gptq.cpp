// GPTQ on one matrix (quant/gptq.h, quant/gptq_grid.h): without error compensation (a diagonal
// Hessian) it is bit for bit round-to-nearest on every scheme, act-order included; on correlated
// inputs its layer output error ||X (W - Q)^T|| is below half RTN's on every scheme, with and
// without act-order (and act-order below plain GPTQ when the features differ in scale); dead inputs quantize to zero; bad input is one clear error.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "error_text.h"
#include "kernels/ops.h"
#include "quant/gptq.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using testing_util::error_of;
using testing_util::fresh_seed;
using testing_util::random_tensor;

namespace {

struct Scheme {
  const char* name;
  QuantSpec spec;
};

const std::vector<Scheme>& schemes() {
  static const std::vector<Scheme> all{
      {"int8", {QuantScheme::Int8}},
      {"int4 g32 sym", {QuantScheme::Int4, 32, true}},
      {"int4 g64 sym", {QuantScheme::Int4, 64, true}},
      {"int4 g128 sym", {QuantScheme::Int4, 128, true}},
      {"int4 g32 asym", {QuantScheme::Int4, 32, false}},
      {"int4 g128 asym", {QuantScheme::Int4, 128, false}},
      {"q8_0", {QuantScheme::Q8_0}},
      {"q4_0", {QuantScheme::Q4_0}},
  };
  return all;
}

void expect_same_packing(const PackedTensor& got, const PackedTensor& want, const std::string& what) {
  ASSERT_EQ(got.parts.size(), want.parts.size()) << what;
  for (size_t i = 0; i < got.parts.size(); ++i) {
    ASSERT_EQ(got.parts[i].nbytes(), want.parts[i].nbytes()) << what << " part " << i;
    EXPECT_EQ(std::memcmp(got.parts[i].data(), want.parts[i].data(), got.parts[i].nbytes()), 0) << what << " part " << i;
  }
}

// Correlated inputs [n, in]: a few latent factors mixed into every feature, features of very
// different scales, a little noise.
Tensor correlated_inputs(int64_t n, int64_t in, uint64_t seed) {
  const int64_t factors = 24;
  const Tensor z = random_tensor({n, factors}, DType::F32, Device::cpu(), seed);
  const Tensor mix = random_tensor({factors, in}, DType::F32, Device::cpu(), seed + 1);
  Tensor x = random_tensor({n, in}, DType::F32, Device::cpu(), seed + 2, 0.5f);
  ops::gemm(x, z, mix, false, false, 1.0f, 1.0f);
  std::mt19937_64 gen(seed + 3);
  std::lognormal_distribution<float> scale(0.0f, 0.7f);
  float* v = x.data_as<float>();
  for (int64_t c = 0; c < in; ++c) {
    const float s = scale(gen);
    for (int64_t r = 0; r < n; ++r) v[r * in + c] *= s;
  }
  return x;
}

Tensor hessian_of(const Tensor& x) {
  Tensor h = Tensor::empty({x.size(1), x.size(1)}, DType::F32);
  ops::fill(h, 0.0f);
  quant::accumulate_hessian(h, x, 2.0f / static_cast<float>(x.size(0)));
  return h;
}

// ||X (W - Q)^T||_F^2: how much the layer's outputs move.
double output_error(const Tensor& x, const Tensor& w, const PackedTensor& q) {
  Tensor diff = quant::dequantize(q, DType::F32);
  ops::add(diff, w, diff, 1.0f, -1.0f);
  Tensor y = Tensor::empty({x.size(0), w.size(0)}, DType::F32);
  ops::gemm(y, x, diff, false, true);
  double sum = 0;
  for (float v : y.to_vector<float>()) sum += double(v) * v;
  return sum;
}

}  // namespace

TEST(Gptq, WithoutCompensationItIsRoundToNearestBitForBit) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int64_t rows = 40, cols = 256;
  const Tensor w = random_tensor({rows, cols}, DType::F32, Device::cpu(), seed, 0.05f);
  // A diagonal Hessian of distinct entries: no error spreads, and act-order reorders every column.
  Tensor h = Tensor::empty({cols, cols}, DType::F32);
  ops::fill(h, 0.0f);
  std::mt19937_64 gen(seed);
  for (int64_t c = 0; c < cols; ++c) h.data_as<float>()[c * cols + c] = 0.5f + float(gen() % 100000) / 1000.0f;
  for (const Scheme& s : schemes())
    for (const bool act_order : {false, true}) {
      SCOPED_TRACE(std::string(s.name) + (act_order ? " act-order" : ""));
      const PackedTensor gptq = quant::gptq_quantize(w, h, s.spec, {.block_size = 64, .act_order = act_order}, "w");
      expect_same_packing(gptq, quant::quantize(w, resolve_quant_spec(s.spec, w.shape())), s.name);
    }
}

TEST(Gptq, LayerOutputErrorIsBelowRoundToNearestOnCorrelatedInputs) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int64_t rows = 64, cols = 256, n = 2048;
  const Tensor x = correlated_inputs(n, cols, seed);
  const Tensor h = hessian_of(x);
  const Tensor w = random_tensor({rows, cols}, DType::F32, Device::cpu(), seed + 10, 0.05f);
  for (const Scheme& s : schemes()) {
    const double rtn = output_error(x, w, quant::quantize(w, resolve_quant_spec(s.spec, w.shape())));
    double error[2];
    for (const bool act_order : {false, true}) {
      error[act_order] =
          output_error(x, w, quant::gptq_quantize(w, h, s.spec, {.block_size = 32, .act_order = act_order}, "w"));
      std::printf("%-15s %-10s output error gptq / rtn = %.3f\n", s.name, act_order ? "act-order" : "",
                  error[act_order] / rtn);
      EXPECT_LT(error[act_order], 0.5 * rtn) << s.name << (act_order ? " act-order" : "");
    }
    // Features of very different scales: the large ones first leaves the small ones to absorb the error.
    EXPECT_LT(error[1], error[0]) << s.name;
  }
}

TEST(Gptq, BlockSizeDoesNotChangeTheResultMuch) {
  // The lazy batch update is the same arithmetic regrouped: blocks of 1, 32 and all columns agree
  // up to rounding, which may flip a few codes.
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Tensor x = correlated_inputs(1024, 128, seed);
  const Tensor h = hessian_of(x);
  const Tensor w = random_tensor({32, 128}, DType::F32, Device::cpu(), seed + 10, 0.05f);
  const QuantSpec spec{QuantScheme::Int4, 32, false};
  const double one = output_error(x, w, quant::gptq_quantize(w, h, spec, {.block_size = 1}, "w"));
  for (const int64_t block : {32, 128, 1000}) {
    const double e = output_error(x, w, quant::gptq_quantize(w, h, spec, {.block_size = block}, "w"));
    EXPECT_NEAR(e / one, 1.0, 0.05) << "block " << block;
  }
}

TEST(Gptq, DeadInputsQuantizeToZero) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Tensor x = correlated_inputs(512, 64, seed);
  for (int64_t r = 0; r < 512; ++r) x.data_as<float>()[r * 64 + 5] = 0.0f;
  const Tensor w = random_tensor({16, 64}, DType::F32, Device::cpu(), seed + 10, 0.05f);
  for (const Scheme& s : schemes()) {
    if (s.spec.group_size > 64) continue;
    const Tensor q = quant::dequantize(quant::gptq_quantize(w, hessian_of(x), s.spec, {.act_order = true}, "w"), DType::F32);
    for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(q.data_as<float>()[r * 64 + 5], 0.0f) << s.name << " row " << r;
  }
}

TEST(Gptq, BadInputIsOneClearError) {
  const Tensor w = random_tensor({8, 64}, DType::F32, Device::cpu(), 1);
  Tensor h = Tensor::empty({32, 32}, DType::F32);
  ops::fill(h, 0.0f);
  EXPECT_NE(error_of([&] { quant::gptq_quantize(w, h, {QuantScheme::Int8}, {}, "layer.q"); })
                .find("gptq layer.q: the Hessian must be f32 [64, 64]"),
            std::string::npos);
  Tensor h64 = hessian_of(random_tensor({128, 64}, DType::F32, Device::cpu(), 2));
  EXPECT_NE(error_of([&] { quant::gptq_quantize(w, h64, {QuantScheme::NF4}, {}, "layer.q"); }).find("nf4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { quant::gptq_quantize(w, h64, {QuantScheme::Int4, 48, true}, {}, "layer.q"); })
                .find("int4 groups are 32, 64 or 128"),
            std::string::npos);
  // Not positive definite even after dampening: a negative diagonal.
  ops::fill(h64, 0.0f);
  for (int64_t c = 0; c < 64; ++c) h64.data_as<float>()[c * 64 + c] = c == 3 ? -100.0f : 1.0f;
  EXPECT_NE(error_of([&] { quant::gptq_quantize(w, h64, {QuantScheme::Int8}, {}, "layer.q"); })
                .find("gptq layer.q: the dampened Hessian is not positive definite"),
            std::string::npos);
}
