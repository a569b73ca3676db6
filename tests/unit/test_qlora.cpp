// QLoRA: lora.base_quant (values, one-line errors), which parameters it packs, Linear with a packed
// base (both products equal the dense ones on dequantize(base), in both packed_matmul modes), and
// how estimate-memory counts the packed base.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "error_text.h"
#include "engine/config/job_config.h"
#include "engine/memory_estimate.h"
#include "lora/adapter.h"
#include "model/linear.h"
#include "quant/packed.h"
#include "random_tensors.h"
#include "tiny_config.h"

using namespace tessera;
using namespace tessera::testing_util;
using ::testing::HasSubstr;

namespace {

ModelConfig tiny_model() { return tiny_llama(); }

std::string config_error(const std::vector<std::string>& sets) {
  return error_of([&] { load_job_config("", sets); });
}

std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }

}  // namespace

TEST(QloraConfig, BaseQuantValuesAndErrors) {
  const JobConfig nf4 = load_job_config("", {"lora.base_quant=nf4", "lora.packed_matmul=gemm_packed"});
  EXPECT_EQ(nf4.lora->base_quant, "nf4");
  EXPECT_EQ(nf4.lora->packed_matmul, "gemm_packed");
  EXPECT_EQ(load_job_config("", {"lora={}"}).lora->packed_matmul, "dequantize");
  const lora::AdapterSpec a = lora::resolve(*nf4.lora, tiny_model());
  ASSERT_TRUE(a.base_quant.has_value());
  EXPECT_EQ(*a.base_quant, QuantScheme::NF4);
  EXPECT_EQ(a.packed_matmul, PackedMatmul::gemm_packed);
  EXPECT_FALSE(lora::resolve(lora::LoraOptions{}, tiny_model()).base_quant.has_value());
  EXPECT_THAT(config_error({"lora.base_quant=int4"}),
              HasSubstr("lora.base_quant: expected one of none, nf4, int8, got \"int4\""));
  EXPECT_THAT(config_error({"lora.packed_matmul=fused"}),
              HasSubstr("lora.packed_matmul: expected one of dequantize, gemm_packed, got \"fused\""));
  lora::LoraOptions bad;
  bad.base_quant = "q4_0";
  try {
    lora::resolve(bad, tiny_model());
    ADD_FAILURE() << "q4_0 accepted as a base";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "lora.base_quant: unknown 'q4_0' (expected none, nf4 or int8)");
  }
}

// Every projection weight of every layer is packed (adapted or not); embeddings, norms, lm_head
// and the adapters are not.
TEST(QloraAdapter, PacksEveryProjectionWeightAndNothingElse) {
  lora::LoraOptions o;
  o.r = 4;
  o.target_modules = {"q_proj"};
  o.layers = {1};
  o.base_quant = "int8";
  const ModelConfig c = tiny_model();
  int packed = 0;
  for (const ParamSpec& p : lora::lora_parameters(c, lora::resolve(o, c))) {
    const bool projection = p.name.ends_with("_proj.weight");
    EXPECT_EQ(p.quant.has_value(), projection) << p.name;
    if (!p.quant) continue;
    ++packed;
    EXPECT_EQ(p.quant->scheme, QuantScheme::Int8) << p.name;
    EXPECT_FALSE(p.trainable) << p.name;
  }
  EXPECT_EQ(packed, 2 * 7);
}

// A packed base gives exactly what the dense base dequantize(base) gives (CPU, fp32): the output,
// the input gradient and the adapters' gradients, with either packed_matmul.
TEST(QloraLinear, PackedBaseEqualsItsDequantizedWeight) {
  for (QuantScheme scheme : {QuantScheme::NF4, QuantScheme::Int8}) {
    for (PackedMatmul mode : {PackedMatmul::dequantize, PackedMatmul::gemm_packed}) {
      const uint64_t seed = fresh_seed();
      SCOPED_TRACE(::testing::Message() << quant_scheme_name(scheme) << " mode " << int(mode) << " seed " << seed);
      const Device cpu = Device::cpu();
      const Tensor w = random_tensor({48, 64}, DType::F32, cpu, seed, 0.05f);
      Linear packed;
      packed.packed = std::make_shared<const PackedTensor>(quant::quantize(w, {.scheme = scheme}));
      packed.packed_matmul = mode;
      packed.bias = random_tensor({48}, DType::F32, cpu, seed + 1);
      packed.lora_a = random_tensor({4, 64}, DType::F32, cpu, seed + 2, 0.1f);
      packed.lora_b = random_tensor({48, 4}, DType::F32, cpu, seed + 3, 0.1f);
      packed.lora_scale = 2.0f;
      Linear dense = packed;
      dense.packed.reset();
      dense.weight = quant::dequantize(*packed.packed, DType::F32);
      EXPECT_EQ(packed.out_features(), 48);
      EXPECT_EQ(packed.in_features(), 64);
      // The base really is quantized: dequantize(quantize(w)) differs from w.
      EXPECT_NE(values(dense.weight), values(w));

      const Tensor x = random_tensor({2, 5, 64}, DType::F32, cpu, seed + 4);
      const Tensor dy = random_tensor({10, 48}, DType::F32, cpu, seed + 5);
      const LoraDropout drop{0.25f, 9, 100};
      auto run = [&](const Linear& l) {
        Tensor xa;
        const Tensor y = l.forward(x, &xa, drop);
        Linear grads;
        grads.lora_a = Tensor::empty({4, 64}, DType::F32, cpu);
        grads.lora_b = Tensor::empty({48, 4}, DType::F32, cpu);
        ops::fill(grads.lora_a, 0.0f);
        ops::fill(grads.lora_b, 0.0f);
        const Tensor dx = Tensor::empty({10, 64}, DType::F32, cpu);
        l.backward(dy, x, xa, grads, dx, false, drop);
        return std::vector<std::vector<float>>{values(y), values(dx), values(grads.lora_a), values(grads.lora_b)};
      };
      const auto got = run(packed), want = run(dense);
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i].size(), want[i].size());
        for (size_t j = 0; j < want[i].size(); ++j)
          ASSERT_NEAR(got[i][j], want[i][j], 1e-5f * (1.0f + std::abs(want[i][j]))) << "output " << i << " at " << j;
      }
    }
  }
}

// The base counts its packed bytes: NF4 packs a [out, in] weight into in * out / 2 code bytes, an
// 8-bit absmax per 64 and the double quantization's scales (each part 16-byte aligned); int8 one
// byte per weight and an f32 scale per row. Trainable state is the adapters' alone.
TEST(QloraMemoryEstimate, PackedBaseCountsItsBytes) {
  const ModelConfig c = tiny_model();
  auto estimate = [&](const std::string& quant) {
    JobConfig job;
    job.lora = lora::LoraOptions{};
    job.lora->r = 2;
    job.lora->base_quant = quant;
    return estimate_memory(c, job, 2).at(3);
  };
  const MemoryEstimate none = estimate("none"), nf4 = estimate("nf4"), int8 = estimate("int8");
  // Per layer q, o 32 x 32, k, v 16 x 32, gate, up, down 64 x 32: 9216 projection weights.
  auto packed_layer = [](QuantScheme s) {
    double bytes = 0;
    for (Shape shape : {Shape{32, 32}, Shape{16, 32}, Shape{16, 32}, Shape{32, 32}, Shape{64, 32}, Shape{64, 32},
                        Shape{32, 64}})
      bytes += static_cast<double>(packed_bytes({.scheme = s}, shape));
    return bytes;
  };
  EXPECT_EQ(packed_layer(QuantScheme::NF4), 2 * (512 + 16 + 16 + 16) + 2 * (256 + 16 + 16 + 16) +
                                                3 * (1024 + 32 + 16 + 16));
  for (auto [e, scheme] : {std::pair{nf4, QuantScheme::NF4}, std::pair{int8, QuantScheme::Int8}}) {
    // Two layers' projections leave the bf16 working copy (2 B each) for their packed bytes,
    // split over the 2 ranks at stage 3; alignment moves a tensor by less than 256 bytes.
    const double saved = (2 * 2 * 9216 - 2 * packed_layer(scheme)) / 2;
    EXPECT_NEAR(e.working, none.working - saved, 256 * 16) << quant_scheme_name(scheme);
    EXPECT_LT(e.working, none.working) << quant_scheme_name(scheme);
    EXPECT_EQ(e.master, none.master);
    EXPECT_EQ(e.moments, none.moments);
    EXPECT_EQ(e.gradients, none.gradients);
    // One projection (the largest, 64 x 32) dequantized to bf16 at a time.
    EXPECT_NEAR(e.activations, none.activations + 2 * 2048, 1e-9);
  }
  EXPECT_LT(nf4.working, int8.working);
}
