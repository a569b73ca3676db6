// LoRA jobs: the `lora:` section (defaults, one-line errors), what it means for a model (targets,
// layers, scale, the parameter list), and how estimate-memory counts a frozen base.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/config/job_config.h"
#include "engine/memory_estimate.h"
#include "lora/adapter.h"
#include "job_config_error.h"
#include "tiny_config.h"

using namespace tessera;
using tessera::testing_util::error_of;
using tessera::testing_util::job_config_error;
using tessera::testing_util::kNoError;

namespace {

ModelConfig tiny_model(bool tied = true) { return testing_util::tiny_llama(tied); }

std::string resolve_error(const lora::LoraOptions& o, bool tied = true) {
  return error_of([&] { lora::resolve(o, tiny_model(tied)); });
}

}  // namespace

TEST(LoraConfig, SectionDefaultsAndValues) {
  EXPECT_FALSE(load_job_config("").lora.has_value()) << "no lora section: a full-parameter job";
  const JobConfig defaults = load_job_config("", {"lora={}"});
  ASSERT_TRUE(defaults.lora.has_value());
  EXPECT_EQ(defaults.lora->r, 16);
  EXPECT_EQ(defaults.lora->alpha, 32);
  EXPECT_EQ(defaults.lora->target_modules, std::vector<std::string>{"all-linear"});
  EXPECT_EQ(defaults.lora->init, "peft");
  EXPECT_EQ(defaults.lora->base_quant, "none");
  const JobConfig c = load_job_config("", {"lora.r=8", "lora.target_modules=q_proj", "lora.layers=[1]",
                                           "lora.modules_to_save=[embed_tokens]", "lora.use_rslora=true"});
  EXPECT_EQ(c.lora->r, 8);
  EXPECT_EQ(c.lora->target_modules, std::vector<std::string>{"q_proj"}) << "one name is a list of one";
  EXPECT_EQ(c.lora->layers, std::vector<int64_t>{1});
  // Written back and read again: the same section.
  const auto path = std::filesystem::temp_directory_path() / ("tessera-lora-rt-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << to_yaml(c);
  const JobConfig again = load_job_config(path.string());
  EXPECT_EQ(again.lora->target_modules, c.lora->target_modules);
  EXPECT_EQ(again.lora->layers, c.lora->layers);
  EXPECT_TRUE(again.lora->use_rslora);
  EXPECT_FALSE(load_job_config("", {"train.steps=3"}).lora) << "and without one, none appears";
}

TEST(LoraConfig, BadKeysAreOneLineErrors) {
  EXPECT_EQ(job_config_error("lora:\n  target_modules: [q_proj, qkv]\n"),
            "job.yaml:2: lora.target_modules: unknown module 'qkv': expected all-linear (alone) or a list of q_proj, "
            "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
  EXPECT_EQ(job_config_error("lora:\n  r: 0\n"), "job.yaml:2: lora.r: must be at least 1, got 0");
  EXPECT_EQ(job_config_error("lora:\n  dropout: 1\n"), "job.yaml:2: lora.dropout: must be in [0, 1), got 1");
  EXPECT_EQ(job_config_error("lora:\n  modules_to_save: [norm]\n"),
            "job.yaml:2: lora.modules_to_save: unknown module 'norm': expected embed_tokens or lm_head");
  EXPECT_EQ(job_config_error("lora:\n  init: kaiming\n"),
            "job.yaml:2: lora.init: expected one of peft, gaussian, got \"kaiming\"");
  EXPECT_EQ(job_config_error("lora:\n  alhpa: 8\n"), "job.yaml:2: unknown key 'lora.alhpa' (did you mean 'lora.alpha'?)");
}

TEST(LoraAdapter, ResolvesTargetsLayersAndScale) {
  lora::LoraOptions o;
  lora::AdapterSpec a = lora::resolve(o, tiny_model());
  EXPECT_EQ(a.target_names(), (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                         "down_proj"}));
  EXPECT_FLOAT_EQ(a.scale(), 2.0f);
  o.use_rslora = true;
  EXPECT_FLOAT_EQ(lora::resolve(o, tiny_model()).scale(), 8.0f);
  o.target_modules = {"v_proj", "q_proj"};
  o.layers = {1};
  a = lora::resolve(o, tiny_model());
  EXPECT_EQ(a.target_names(), (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(a.adapts(1, kQ));
  EXPECT_FALSE(a.adapts(0, kQ));
  EXPECT_FALSE(a.adapts(1, kK));

  o.layers = {2};
  EXPECT_EQ(resolve_error(o), "lora.layers: layer 2 is not one of the model's 2 (0 to 1)");
  o.layers = {};
  o.modules_to_save = {"lm_head"};
  EXPECT_EQ(resolve_error(o), "lora.modules_to_save: this model ties lm_head to embed_tokens; name embed_tokens to train "
                              "them");
  EXPECT_EQ(resolve_error(o, /*tied=*/false), kNoError);
}

// The base frozen (but the modules to save), then per adapted layer the A's [r, in] and the B's
// [out, r], decaying; A starts by the init rule, B at zero.
TEST(LoraAdapter, ParameterList) {
  lora::LoraOptions o;
  o.r = 4;
  o.init = "gaussian";
  o.target_modules = {"q_proj", "down_proj"};
  o.modules_to_save = {"embed_tokens"};
  const ModelConfig c = tiny_model();
  const std::vector<ParamSpec> params = lora::lora_parameters(c, lora::resolve(o, c));
  const std::vector<ParamSpec> base = model_parameters(c);
  ASSERT_EQ(params.size(), base.size() + 2 * 2 * 2);
  for (size_t i = 0; i < base.size(); ++i) {
    EXPECT_EQ(params[i].name, base[i].name);
    EXPECT_EQ(params[i].trainable, base[i].name == "model.embed_tokens.weight") << base[i].name;
  }
  const std::vector<std::pair<std::string, Shape>> adapters = {
      {"model.layers.0.self_attn.q_proj.lora_A.weight", {4, 32}}, {"model.layers.0.mlp.down_proj.lora_A.weight", {4, 64}},
      {"model.layers.0.self_attn.q_proj.lora_B.weight", {32, 4}}, {"model.layers.0.mlp.down_proj.lora_B.weight", {32, 4}},
      {"model.layers.1.self_attn.q_proj.lora_A.weight", {4, 32}}};
  for (size_t i = 0; i < adapters.size(); ++i) {
    const ParamSpec& p = params[base.size() + i];
    EXPECT_EQ(p.name, adapters[i].first);
    EXPECT_EQ(p.shape, adapters[i].second) << p.name;
    EXPECT_TRUE(p.trainable && p.decays) << p.name;
    EXPECT_EQ(p.init, p.name.find("lora_A") != std::string::npos ? ParamInit::lora_gaussian : ParamInit::zeros) << p.name;
  }
}

// A LoRA job at stage 3 on two ranks: the frozen base costs 2 bytes a parameter split over the
// ranks and nothing else; master weights, moments and gradients are the adapters' alone.
TEST(LoraMemoryEstimate, FrozenBaseCostsItsWorkingCopyOnly) {
  const ModelConfig c = tiny_model();
  JobConfig job;
  job.lora = lora::LoraOptions{};
  job.lora->r = 2;
  const double base = 2048 + 2 * (9216 + 64) + 32;  // every base element (tied embedding)
  // Per layer, A [2, in] and B [out, 2] of q (32 x 32), k, v (16 x 32), o (32 x 32), gate, up
  // (64 x 32) and down (32 x 64).
  const double per_layer = 2 * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 2 * (32 + 64) + (64 + 32));
  const double adapters = 2 * per_layer;
  const MemoryEstimate e = estimate_memory(c, job, 2).at(3);
  EXPECT_EQ(e.master, 4 * adapters / 2);
  EXPECT_EQ(e.moments, 8 * adapters / 2);
  EXPECT_EQ(e.gradients, 4 * (adapters / 2 + per_layer));
  // The working copy: the adapters' slices and this rank's half of the base's bytes, whose
  // tensors each start at a multiple of 256 bytes of their unit's buffer.
  EXPECT_GE(e.working, 2 * adapters / 2 + 2 * base / 2);
  EXPECT_LE(e.working, 2 * adapters / 2 + (2 * base + 256 * 30) / 2);
  // Gathered: the largest unit whole (a layer: adapters in the compute dtype, base bytes) three times.
  EXPECT_GE(e.gathered, 3 * (2 * per_layer + 2 * 9280));
  EXPECT_LE(e.gathered, 3 * (2 * per_layer + 2 * 9280 + 256 * 9));
}
