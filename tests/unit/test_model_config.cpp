#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>

#include "core/error.h"
#include "error_text.h"
#include "io/safetensors_writer.h"
#include "model/model_config.h"
#include "model/model_config_params.h"
#include "model/model_config_rope.h"

namespace fs = std::filesystem;
using namespace tessera;
using nlohmann::json;

namespace {

std::string fixture(const std::string& name) { return std::string(TESSERA_TEST_DATA) + "/hf_configs/" + name; }

ModelConfig load(const std::string& name) { return ModelConfig::from_file(fixture(name)); }

std::string config_error(const std::string& name) {
  return testing_util::error_of([&] { load(name); });
}

std::string json_error(const json& j) {
  return testing_util::error_of([&] { ModelConfig::from_json(j, "model.init"); });
}

json tiny(json changes = json::object()) {
  json j = {{"model_type", "llama"},   {"vocab_size", 32},         {"hidden_size", 16},
            {"intermediate_size", 40}, {"num_hidden_layers", 2},   {"num_attention_heads", 4},
            {"head_dim", 4},           {"rope_theta", 10000.0}};
  j.merge_patch(changes);
  return j;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

}  // namespace

TEST(ModelConfig, Llama31WithLlama3RopeScaling) {
  const ModelConfig c = load("llama31_8b.json");
  EXPECT_EQ(c.family, ModelFamily::Llama);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias());
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.sliding_window);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_ids, std::vector<int64_t>({128000}));
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>({128001, 128008, 128009}));

  // Folder form reads config.json.
  const fs::path dir = fs::temp_directory_path() / ("tessera_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(fixture("llama31_8b.json"), dir / "config.json", fs::copy_options::overwrite_existing);
  EXPECT_EQ(ModelConfig::from_file(dir.string()), c);
  fs::remove_all(dir);
}

TEST(ModelConfig, NestedRopeParametersOfNewerTransformers) {
  const ModelConfig c = load("llama32_1b_rope_parameters.json");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "bfloat16");  // the "dtype" key
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>({128001}));
}

TEST(ModelConfig, MistralRecordsSlidingWindow) {
  const ModelConfig c = load("mistral_7b.json");
  EXPECT_EQ(c.family, ModelFamily::Mistral);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_FALSE(c.qkv_bias());
  EXPECT_FALSE(c.o_proj_bias());
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Default);
}

TEST(ModelConfig, Qwen2TiedWithQkvBias) {
  const ModelConfig c = load("qwen25_0_5b.json");
  EXPECT_EQ(c.family, ModelFamily::Qwen2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qkv_bias());
  EXPECT_FALSE(c.o_proj_bias());
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.sliding_window);  // use_sliding_window is false
  const auto params = model_parameters(c);
  EXPECT_EQ(params.back().name, "model.norm.weight");  // tied: no lm_head
  EXPECT_EQ(params[1].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(params[2].name, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(params[2].shape, Shape({896}));
  EXPECT_EQ(params[4].name, "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(params[4].shape, Shape({128}));  // 2 kv heads * 64
}

TEST(ModelConfig, Qwen3HeadDimDiffersFromHiddenOverHeads) {
  const ModelConfig c = load("qwen3_0_6b.json");
  EXPECT_EQ(c.family, ModelFamily::Qwen3);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_NE(c.head_dim, c.hidden_size / c.num_attention_heads);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias());
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  const auto params = model_parameters(c);
  // embed + 28 layers * (4 proj + 2 qk norms + 3 mlp + 2 norms) + final norm
  EXPECT_EQ(params.size(), 1u + 28 * 11 + 1);
  EXPECT_EQ(params[1].shape, Shape({16 * 128, 1024}));  // q_proj
  EXPECT_EQ(params[2].shape, Shape({8 * 128, 1024}));   // k_proj
  EXPECT_EQ(params[4].shape, Shape({1024, 16 * 128}));  // o_proj
  EXPECT_EQ(params[5].name, "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(params[5].shape, Shape({128}));
  // Without head_dim, Qwen3 uses its class default of 128, not hidden / heads.
  json j = tiny({{"model_type", "qwen3"}});
  j.erase("head_dim");
  EXPECT_EQ(ModelConfig::from_json(j).head_dim, 128);
}

TEST(ModelConfig, Qwen3Yarn) {
  const ModelConfig c = load("qwen3_yarn.json");
  const RopeScaling& s = c.rope_scaling;
  EXPECT_EQ(s.type, RopeScaling::Type::Yarn);
  EXPECT_DOUBLE_EQ(s.factor, 4.0);
  EXPECT_EQ(s.original_max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(s.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(s.beta_slow, 1.0);
  EXPECT_FALSE(s.mscale);
  EXPECT_TRUE(s.truncate);
  EXPECT_NEAR(rope_attention_factor(c), 0.1 * std::log(4.0) + 1.0, 1e-12);
}

TEST(ModelConfig, DefaultsAndTokenIds) {
  const ModelConfig c = load("tiny_llama.json");
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_TRUE(c.bos_token_ids.empty());
  EXPECT_EQ(ModelConfig::from_json(tiny({{"num_key_value_heads", nullptr}})).num_key_value_heads, 4);
}

TEST(ModelConfig, BadConfigsGiveOneLineErrors) {
  std::string e = config_error("bad_missing_hidden_size.json");
  EXPECT_CONTAINS(e, "bad_missing_hidden_size.json: missing 'hidden_size'");
  e = config_error("bad_heads_not_divisible.json");
  EXPECT_CONTAINS(e, "bad_heads_not_divisible.json: num_attention_heads (4) must be divisible by "
                     "num_key_value_heads (3)");
  e = config_error("bad_gelu.json");
  EXPECT_CONTAINS(e, "bad_gelu.json: hidden_act 'gelu' is not supported");
  e = config_error("bad_model_type.json");
  EXPECT_CONTAINS(e, "bad_model_type.json: model_type 'gpt2' is not supported");
  e = config_error("bad_rope_type.json");
  EXPECT_CONTAINS(e, "bad_rope_type.json: rope_scaling.rope_type 'dynamic' is not supported");
  EXPECT_CONTAINS(config_error("missing.json"), "missing.json: cannot open");
  for (const std::string& msg : {config_error("bad_gelu.json"), config_error("bad_model_type.json")})
    EXPECT_EQ(msg.find('\n'), std::string::npos);

  EXPECT_CONTAINS(json_error(tiny({{"hidden_size", -16}})), "model.init: 'hidden_size' must be positive, got -16");
  EXPECT_CONTAINS(json_error(tiny({{"vocab_size", 32.5}})), "'vocab_size' must be an integer");
  EXPECT_CONTAINS(json_error(tiny({{"vocab_size", "32"}})), "'vocab_size' must be an integer");
  EXPECT_CONTAINS(json_error(tiny({{"num_attention_heads", 0}})), "'num_attention_heads' must be positive");
  EXPECT_CONTAINS(json_error(tiny({{"head_dim", 5}})), "head_dim (5) must be even");
  EXPECT_CONTAINS(json_error(tiny({{"rms_norm_eps", 0}})), "'rms_norm_eps' must be positive");
  EXPECT_CONTAINS(json_error(tiny({{"rope_theta", -1}})), "'rope_theta' must be positive");
  EXPECT_CONTAINS(json_error(tiny({{"tie_word_embeddings", "yes"}})), "'tie_word_embeddings' must be true or false");
  EXPECT_CONTAINS(json_error(tiny({{"model_type", nullptr}})), "missing 'model_type'");
  EXPECT_CONTAINS(json_error(tiny({{"mlp_bias", true}})), "'mlp_bias'");
  EXPECT_CONTAINS(json_error(tiny({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}}})),
                  "missing 'rope_scaling.low_freq_factor'");
  EXPECT_CONTAINS(json_error(tiny({{"rope_scaling", {{"rope_type", "linear"}}}})), "missing 'rope_scaling.factor'");
  EXPECT_CONTAINS(json_error(tiny({{"rope_parameters", {{"rope_type", "longrope"}}}})),
                  "rope_parameters.rope_type 'longrope' is not supported");
  EXPECT_CONTAINS(json_error(tiny({{"partial_rotary_factor", 0.5}})), "partial_rotary_factor other than 1");
  EXPECT_CONTAINS(json_error(tiny({{"rope_parameters", {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}}}})),
                  "rope_parameters.partial_rotary_factor other than 1");
  EXPECT_CONTAINS(json_error(tiny({{"eos_token_id", "x"}})), "'eos_token_id' must be an integer or a list");
  json no_head_dim = tiny({{"hidden_size", 18}});
  no_head_dim.erase("head_dim");
  EXPECT_CONTAINS(json_error(no_head_dim), "hidden_size (18) must be divisible by num_attention_heads (4)");
  EXPECT_CONTAINS(json_error(json::array()), "model.init: expected a JSON object");
}

TEST(ModelConfig, ToJsonRoundTrips) {
  for (const char* name : {"llama31_8b.json", "llama32_1b_rope_parameters.json", "mistral_7b.json",
                           "qwen25_0_5b.json", "qwen3_0_6b.json", "qwen3_yarn.json", "tiny_llama.json"}) {
    SCOPED_TRACE(name);
    const ModelConfig c = load(name);
    const json j = c.to_json();
    EXPECT_EQ(ModelConfig::from_json(j), c);
    EXPECT_EQ(j["model_type"], c.model_type);
  }
  const json j = load("llama31_8b.json").to_json();
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(j["eos_token_id"], json({128001, 128008, 128009}));
  EXPECT_EQ(j["bos_token_id"], 128000);
  EXPECT_TRUE(load("qwen3_0_6b.json").to_json()["rope_scaling"].is_null());
  const json yarn = tiny({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 2.0}, {"mscale", 0.5},
                                            {"mscale_all_dim", 1.0}, {"truncate", false}}}});
  EXPECT_EQ(ModelConfig::from_json(ModelConfig::from_json(yarn).to_json()), ModelConfig::from_json(yarn));
}

TEST(ModelParameters, LlamaNamesShapesAndOrder) {
  const ModelConfig c = load("tiny_llama.json");  // hidden 16, 4 heads of 4, 2 kv heads, inter 40
  const auto params = model_parameters(c);
  const std::vector<std::pair<std::string, Shape>> layer0 = {
      {"model.layers.0.self_attn.q_proj.weight", {16, 16}},
      {"model.layers.0.self_attn.k_proj.weight", {8, 16}},
      {"model.layers.0.self_attn.v_proj.weight", {8, 16}},
      {"model.layers.0.self_attn.o_proj.weight", {16, 16}},
      {"model.layers.0.mlp.gate_proj.weight", {40, 16}},
      {"model.layers.0.mlp.up_proj.weight", {40, 16}},
      {"model.layers.0.mlp.down_proj.weight", {16, 40}},
      {"model.layers.0.input_layernorm.weight", {16}},
      {"model.layers.0.post_attention_layernorm.weight", {16}},
  };
  ASSERT_EQ(params.size(), 1u + 2 * layer0.size() + 2);
  EXPECT_EQ(params[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(params[0].shape, Shape({32, 16}));
  for (size_t i = 0; i < layer0.size(); ++i) {
    EXPECT_EQ(params[1 + i].name, layer0[i].first);
    EXPECT_EQ(params[1 + i].shape, layer0[i].second);
  }
  EXPECT_EQ(params[10].name, "model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(params[params.size() - 2].name, "model.norm.weight");
  EXPECT_EQ(params.back().name, "lm_head.weight");
  EXPECT_EQ(params.back().shape, Shape({32, 16}));

  // attention_bias: biases on all four projections.
  const auto biased = model_parameters(ModelConfig::from_json(tiny({{"attention_bias", true}})));
  EXPECT_EQ(biased[2].name, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(biased[8].name, "model.layers.0.self_attn.o_proj.bias");
  EXPECT_EQ(biased[8].shape, Shape({16}));
}

// Each parameter says how it starts and whether it decays: matrices and embeddings N(0, std) with
// decay, norms 1 and biases 0 without; a whole model is trainable.
TEST(ModelParameters, SpecsSayHowEachParameterStartsAndDecays) {
  const auto params = model_parameters(ModelConfig::from_json(tiny({{"attention_bias", true}})));
  for (const ParamSpec& p : params) {
    SCOPED_TRACE(p.name);
    EXPECT_TRUE(p.trainable);
    if (p.name.ends_with("norm.weight")) {
      EXPECT_EQ(p.init, ParamInit::ones);
      EXPECT_FALSE(p.decays);
    } else if (p.name.ends_with(".bias")) {
      EXPECT_EQ(p.init, ParamInit::zeros);
      EXPECT_FALSE(p.decays);
    } else {
      EXPECT_EQ(p.init, ParamInit::normal);
      EXPECT_TRUE(p.decays);
    }
  }
  // The LoRA rules: kaiming-uniform bound 1/sqrt(in), gaussian std 1/r.
  const uint64_t seed = 3;
  Tensor a = Tensor::empty({4, 64}, DType::F32);
  init_param({"a", {4, 64}, true, true, ParamInit::kaiming_uniform}, a, seed, 0, 0.02f);
  double most = 0;
  for (float v : a.to_vector<float>()) most = std::max(most, double(std::abs(v)));
  EXPECT_LE(most, 1.0 / 8);
  EXPECT_GT(most, 0.9 / 8);
  Tensor g = Tensor::empty({4, 4096}, DType::F32);
  init_param({"a", {4, 4096}, true, true, ParamInit::lora_gaussian}, g, seed, 0, 0.02f);
  double squares = 0;
  for (float v : g.to_vector<float>()) squares += double(v) * v;
  EXPECT_NEAR(std::sqrt(squares / g.numel()), 0.25, 0.01);
}

namespace {

// Writes a checkpoint holding `params` (zeros), plus `extra` tensors, into a fresh folder.
std::string write_checkpoint(const std::vector<ParamSpec>& params, const std::vector<ParamSpec>& extra = {},
                             DType dtype = DType::BF16) {
  const fs::path dir = fs::temp_directory_path() / ("tessera_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<TensorEntry> entries;
  for (const auto* list : {&params, &extra})
    for (const auto& p : *list) entries.push_back({p.name, dtype, p.shape});
  ShardedSafetensorsWriter writer(dir.string(), entries, 4096);
  for (const auto& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    std::memset(t.data(), 0, t.nbytes());
    writer.write(e.name, t);
  }
  writer.finish();
  return dir.string();
}

std::string checkpoint_error(const ModelConfig& c, const std::string& dir) {
  return testing_util::error_of([&] { validate_checkpoint(c, SafetensorsModel::open(dir)); });
}

}  // namespace

TEST(ValidateCheckpoint, AcceptsExactAndReportsProblemsByName) {
  const ModelConfig c = load("tiny_llama.json");
  auto params = model_parameters(c);
  EXPECT_EQ(checkpoint_error(c, write_checkpoint(params)), testing_util::kNoError);
  EXPECT_EQ(checkpoint_error(c, write_checkpoint(params, {{"model.layers.0.self_attn.rotary_emb.inv_freq", {2}}})),
            testing_util::kNoError);

  EXPECT_CONTAINS(checkpoint_error(c, write_checkpoint(params, {{"model.extra.weight", {2}}})),
                  "unexpected tensor 'model.extra.weight'");
  auto missing = params;
  missing.erase(missing.begin() + 6);  // layer 0 up_proj
  EXPECT_CONTAINS(checkpoint_error(c, write_checkpoint(missing)),
                  "missing tensor 'model.layers.0.mlp.up_proj.weight' [40, 16]");
  auto wrong = params;
  wrong[2].shape = {16, 16};  // k_proj
  EXPECT_CONTAINS(checkpoint_error(c, write_checkpoint(wrong)),
                  "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 16], the config implies [8, 16]");
  EXPECT_CONTAINS(checkpoint_error(c, write_checkpoint(params, {}, DType::I32)), "expected a floating type");

  // Tied model: lm_head.weight may be present (a redundant copy) or absent; untied needs it.
  ModelConfig tied = c;
  tied.tie_word_embeddings = true;
  auto without_head = params;
  without_head.pop_back();
  EXPECT_EQ(checkpoint_error(tied, write_checkpoint(without_head)), testing_util::kNoError);
  EXPECT_EQ(checkpoint_error(tied, write_checkpoint(params)), testing_util::kNoError);
  EXPECT_CONTAINS(checkpoint_error(c, write_checkpoint(without_head)), "missing tensor 'lm_head.weight'");
  fs::remove_all(fs::temp_directory_path() / ("tessera_ckpt_" + std::to_string(::getpid())));
}

TEST(RopeInvFreq, DefaultAndLinear) {
  const ModelConfig c = ModelConfig::from_json(tiny());  // head_dim 4, theta 1e4
  EXPECT_EQ(rope_inv_freq(c), std::vector<float>({1.0f, 0.01f}));
  EXPECT_DOUBLE_EQ(rope_attention_factor(c), 1.0);
  const ModelConfig lin = ModelConfig::from_json(tiny({{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}));
  EXPECT_EQ(rope_inv_freq(lin), std::vector<float>({0.5f, 0.005f}));
  EXPECT_DOUBLE_EQ(rope_attention_factor(lin), 1.0);
}

TEST(RopeInvFreq, Llama3HandChecked) {
  // head_dim 8, theta 1e4: base frequencies 1, 0.1, 0.01, 0.001, wavelengths 2*pi times 1, 10,
  // 100, 1000. With original length 1000, low/high factors 1/4: wavelengths above 1000 are
  // divided by 8, below 250 kept, and 628.3 is interpolated.
  const ModelConfig c = ModelConfig::from_json(
      tiny({{"head_dim", 8},
            {"rope_scaling",
             {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
              {"original_max_position_embeddings", 1000}}}}));
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.1f);
  const double smooth = (1000 / (2 * std::numbers::pi * 100) - 1) / 3;
  EXPECT_FLOAT_EQ(f[2], static_cast<float>(0.01 * ((1 - smooth) / 8 + smooth)));
  EXPECT_NEAR(f[2], 0.0029753525, 1e-9);
  EXPECT_FLOAT_EQ(f[3], 0.000125f);
  EXPECT_DOUBLE_EQ(rope_attention_factor(c), 1.0);
}

TEST(RopeInvFreq, Llama31Reference) {
  // Values computed separately (Python, double precision) from the Llama 3.1 recipe.
  const auto f = rope_inv_freq(load("llama31_8b.json"));
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[20], 0.016560440080994446f);       // high frequency: unchanged
  EXPECT_FLOAT_EQ(f[31], 0.0008567514129196321f);      // medium: interpolated
  EXPECT_FLOAT_EQ(f[63], 3.068925988914511e-07f);      // low: divided by 8
}

TEST(RopeInvFreq, YarnHandChecked) {
  // head_dim 8, theta 1e4, original length 1000: beta_fast 32 -> dimension 0.697 (floor 0),
  // beta_slow 1 -> 2.20 (ceil 3). Ramp i/3 blends extrapolated f and interpolated f/4.
  json rope = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 1000}};
  const ModelConfig c = ModelConfig::from_json(tiny({{"head_dim", 8}, {"rope_scaling", rope}}));
  const auto f = rope_inv_freq(c);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.075f);     // 0.1 * (2/3 + 1/3 / 4)
  EXPECT_FLOAT_EQ(f[2], 0.005f);     // 0.01 * (1/3 + 2/3 / 4)
  EXPECT_FLOAT_EQ(f[3], 0.00025f);   // 0.001 / 4
  EXPECT_NEAR(rope_attention_factor(c), 1.138629436111989, 1e-12);  // 0.1 ln 4 + 1

  rope["truncate"] = false;  // ramp over [0.6967, 2.2018]
  const auto g = rope_inv_freq(ModelConfig::from_json(tiny({{"head_dim", 8}, {"rope_scaling", rope}})));
  EXPECT_FLOAT_EQ(g[1], 0.08488540090453608f);
  EXPECT_FLOAT_EQ(g[2], 0.003505647948122564f);

  rope["mscale"] = 1.0;
  rope["mscale_all_dim"] = 0.5;
  EXPECT_NEAR(rope_attention_factor(ModelConfig::from_json(tiny({{"head_dim", 8}, {"rope_scaling", rope}}))),
              1.0648216253695715, 1e-12);  // (0.1 ln 4 + 1) / (0.05 ln 4 + 1)
  rope["mscale_all_dim"] = 0;  // 0 counts as absent
  EXPECT_NEAR(rope_attention_factor(ModelConfig::from_json(tiny({{"head_dim", 8}, {"rope_scaling", rope}}))),
              1.138629436111989, 1e-12);
  rope["attention_factor"] = 0.9;
  EXPECT_DOUBLE_EQ(rope_attention_factor(ModelConfig::from_json(tiny({{"head_dim", 8}, {"rope_scaling", rope}}))),
                   0.9);

  // No factor: derived from max_position_embeddings / original.
  const json derived = tiny({{"max_position_embeddings", 8000},
                             {"rope_scaling", {{"rope_type", "yarn"}, {"original_max_position_embeddings", 1000}}}});
  EXPECT_DOUBLE_EQ(ModelConfig::from_json(derived).rope_scaling.factor, 8.0);
}
