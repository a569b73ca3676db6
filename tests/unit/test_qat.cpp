// Quantization-aware training: the quant.qat keys, what they mean for a model, and QatSource:
// its forward is the model with fake-quantized weights exactly, its gradients are that model's
// with the straight-through mask, before start_step it is the plain model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/config/job_config.h"
#include "engine/qat.h"
#include "job_config_error.h"
#include "kernels/ops.h"
#include "model/transformer.h"
#include "random_tensors.h"
#include "run_command.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

ModelConfig tiny_model(bool tied) {
  return ModelConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", 64}, {"hidden_size", 64}, {"intermediate_size", 128},
                     {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                     {"max_position_embeddings", 64}, {"tie_word_embeddings", tied}},
      "tiny");
}

ModelParams random_params(const ModelConfig& c, uint64_t seed) {
  ModelParams p = make_params(c, DType::F32, Device::cpu(), false);
  uint64_t i = 0;
  for_each_param(c, p, [&](const std::string& name, Tensor& t) {
    const bool norm = name.find("norm") != std::string::npos;
    ops::fill_normal(t, seed + i++, 0, norm ? 1.0f : 0.0f, norm ? 0.1f : 0.08f);
  });
  return p;
}

TokenBatch batch(uint64_t seed) {
  std::vector<int64_t> ids(2 * 24);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((seed + i * 7919) % 64);
  return TokenBatch::causal_lm(Tensor::from_vector(ids, {2, 24}, DType::I64), Device::cpu());
}

// The plain model whose selected weights are replaced by their fake quantization.
ModelParams fake_quantized(const ModelConfig& c, const ModelParams& p, const QatSpec& spec) {
  ModelParams q = p;
  for (auto& layer : q.layers)
    for (int i = 0; i < kProjections; ++i) {
      if (!spec.targets.projections[i]) continue;
      Linear& lin = projection(layer, Projection(i));
      Tensor fq = Tensor::empty(lin.weight.shape(), lin.weight.dtype());
      ops::fake_quantize(fq, lin.weight, spec.targets.weights);
      lin.weight = fq;
    }
  if (spec.targets.embed) {
    q.embed = Tensor::empty(p.embed.shape(), p.embed.dtype());
    ops::fake_quantize(q.embed, p.embed, spec.targets.weights);
    if (c.tie_word_embeddings) q.lm_head = q.embed;
  }
  if (spec.targets.lm_head && !c.tie_word_embeddings) {
    q.lm_head = Tensor::empty(p.lm_head.shape(), p.lm_head.dtype());
    ops::fake_quantize(q.lm_head, p.lm_head, spec.targets.weights);
  }
  return q;
}

std::vector<std::pair<std::string, std::vector<float>>> all_values(const ModelConfig& c, ModelParams& p) {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  for_each_param(c, p, [&](const std::string& name, Tensor& t) { out.emplace_back(name, host_f32(t)); });
  return out;
}

}  // namespace

class QatSourceTest : public ::testing::TestWithParam<std::tuple<std::string, bool, std::vector<std::string>>> {};

TEST_P(QatSourceTest, ForwardAndGradientsAreTheFakeQuantizedModels) {
  const auto [weights, tied, modules] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << weights << " tied " << tied << " seed " << seed);
  const ModelConfig c = tiny_model(tied);
  QatOptions options;
  options.weights = weights;
  options.modules = modules;
  const QatSpec spec = resolve_qat(options, c);
  const ModelParams params = random_params(c, seed);
  const TokenBatch b = batch(seed);

  ModelParams grads = make_params(c, DType::F32, Device::cpu(), true);
  WholeParams whole(params, &grads);
  QatSource qat(whole, c, spec);
  qat.set_step(1);
  RunOptions backward;
  backward.backward = true;
  const ModelOutput got = run_model(c, qat, b, backward);

  const ModelParams fq = fake_quantized(c, params, spec);
  ModelParams want_grads = make_params(c, DType::F32, Device::cpu(), true);
  const ModelOutput want = run_model(c, fq, b, false, &want_grads);
  EXPECT_EQ(got.loss, want.loss);

  // The straight-through mask of each fake-quantized weight.
  for (size_t l = 0; l < want_grads.layers.size(); ++l)
    for (int i = 0; i < kProjections; ++i)
      if (spec.targets.projections[i])
        ops::fake_quantize_mask(projection(want_grads.layers[l], Projection(i)).weight,
                                projection(params.layers[l], Projection(i)).weight, spec.targets.weights);
  if (spec.targets.embed) ops::fake_quantize_mask(want_grads.embed, params.embed, spec.targets.weights);
  if (spec.targets.lm_head && !tied) ops::fake_quantize_mask(want_grads.lm_head, params.lm_head, spec.targets.weights);
  const auto g = all_values(c, grads), w = all_values(c, want_grads);
  ASSERT_EQ(g.size(), w.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i].second, w[i].second) << g[i].first;
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, QatSourceTest,
    ::testing::Values(std::make_tuple("int4", false, std::vector<std::string>{"all-linear"}),
                      std::make_tuple("q4_0", true, std::vector<std::string>{"all-linear", "embed_tokens"}),
                      std::make_tuple("int8", false, std::vector<std::string>{"q_proj", "down_proj", "lm_head"}),
                      std::make_tuple("q8_0", false, std::vector<std::string>{"embed_tokens", "lm_head", "up_proj"})));

TEST(QatSource, PlainModelBeforeStartStepAndInt8ActivationsAfter) {
  const ModelConfig c = tiny_model(false);
  QatOptions options;
  options.start_step = 3;
  const ModelParams params = random_params(c, 11);
  const TokenBatch b = batch(5);
  WholeParams whole(params, nullptr);
  QatSource qat(whole, c, resolve_qat(options, c));
  const double plain = run_model(c, params, b, false, nullptr).loss;
  qat.set_step(2);
  EXPECT_EQ(run_model(c, qat, b, {}).loss, plain);
  qat.set_step(3);
  const double int4 = run_model(c, qat, b, {}).loss;
  EXPECT_NE(int4, plain);
  EXPECT_NEAR(int4, plain, 0.05 * plain);
  options.activations = "int8";
  QatSource with_activations(whole, c, resolve_qat(options, c));
  with_activations.set_step(3);
  const double both = run_model(c, with_activations, b, {}).loss;
  EXPECT_NE(both, int4);
  EXPECT_NEAR(both, int4, 0.05 * plain);
}

TEST(QatConfig, KeysAndErrors) {
  EXPECT_EQ(job_config_error("quant:\n  qat:\n    weights: int4\n    group_size: 64\n"), kNoError);
  const JobConfig job = load_job_config("", {"quant.qat.weights=q4_0", "quant.qat.modules=[q_proj, lm_head]"});
  ASSERT_TRUE(job.quant.qat);
  EXPECT_EQ(job.quant.qat->weights, "q4_0");
  EXPECT_EQ(job.quant.qat->modules, (std::vector<std::string>{"q_proj", "lm_head"}));
  EXPECT_FALSE(load_job_config("").quant.qat);
  EXPECT_EQ(job_config_error("quant:\n  qat:\n    weights: int3\n"),
            "job.yaml:3: quant.qat.weights: expected one of int8, int4, q8_0, q4_0, got \"int3\"");
  EXPECT_EQ(job_config_error("quant:\n  qat:\n    group_size: 48\n"),
            "job.yaml:3: quant.qat.group_size: int4 groups are 32, 64 or 128, got 48");
  EXPECT_EQ(job_config_error("quant:\n  qat:\n    weights: int8\n    symmetric: false\n"),
            "job.yaml:4: quant.qat.symmetric: only int4 has an asymmetric form, not int8");
  EXPECT_NE(job_config_error("quant:\n  qat:\n    modules: [q_proj, o_porj]\n").find("unknown module 'o_porj'"),
            std::string::npos);
  // With LoRA: the merged weight is fake-quantized, so a packed base and adapter dropout are refused.
  EXPECT_EQ(job_config_error("lora: {}\nquant:\n  qat: {}\n"), kNoError);
  EXPECT_NE(job_config_error("lora: {base_quant: nf4}\nquant:\n  qat: {}\n")
                .find("lora.base_quant: nf4 cannot be combined with quant.qat"),
            std::string::npos);
  EXPECT_NE(job_config_error("lora: {dropout: 0.1}\nquant:\n  qat: {}\n").find("lora.dropout: must be 0 with quant.qat"),
            std::string::npos);
  // Against the model: rows that do not split into the groups.
  QatOptions o;
  o.group_size = 128;
  try {
    resolve_qat(o, tiny_model(false));
    FAIL() << "hidden size 64 does not split into groups of 128";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "quant.qat: model.layers.0.self_attn.q_proj.weight: int4: rows of 64 elements are not a whole number "
              "of groups of 128");
  }
  EXPECT_EQ(resolve_qat(QatOptions{}, tiny_model(true)).describe(),
            "int4 (groups of 32, symmetric) on 7 projections per layer");
}

TEST(QatCli, TheExampleJobTrainsWithFakeQuantization) {
  const std::string dir = ::testing::TempDir() + "qat_cli";
  std::filesystem::remove_all(dir);
  const auto r = run_tessera("train " TESSERA_SOURCE_DIR "/configs/qat-int4.yaml --set data.train=" TESSERA_SOURCE_DIR
                             "/README.md --set train.steps=4 --set quant.qat.start_step=2 --set log.every_steps=1 "
                             "--set checkpoint.dir=" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("quantization-aware training: int4 (groups of 32, symmetric) on 7 projections per layer, "
                          "from step 2"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("step 4/4"), std::string::npos) << r.output;
}
