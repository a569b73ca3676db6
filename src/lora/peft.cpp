#include "lora/peft.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors_writer.h"
#include "kernels/ops.h"

namespace tessera::lora {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kPrefix = "base_model.model.";

// PEFT's default targets for the architectures Tessera runs (its per-model mapping), used when
// adapter_config.json has target_modules null.
const std::vector<std::string> kPeftDefaultTargets = {"q_proj", "v_proj"};

// The key if present and not null.
const json* field(const json& config, const char* key) {
  auto it = config.find(key);
  return it == config.end() || it->is_null() ? nullptr : &*it;
}

// LoraConfig keys of variants Tessera does not implement, refused unless they hold PEFT's default.
void refuse_variants(const json& config, const std::string& where) {
  auto set = [&](const char* key) {
    const json* v = field(config, key);
    if (!v) return false;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_object() || v->is_array()) return !v->empty();
    return true;
  };
  for (const char* key : {"use_dora", "rank_pattern", "alpha_pattern", "layer_replication", "lora_bias", "use_qalora",
                          "trainable_token_indices", "target_parameters", "alora_invocation_tokens", "exclude_modules",
                          "megatron_config", "arrow_config", "loftq_config", "fan_in_fan_out"})
    TS_CHECK(!set(key), "{}: {} is set: Tessera reads plain LoRA adapters only (not this variant)", where, key);
  if (const json* bias = field(config, "bias"))
    TS_CHECK(bias->is_string() && bias->get<std::string>() == "none", "{}: bias is {}: Tessera reads adapters with bias "
             "\"none\" only", where, bias->dump());
  // Initialisations that also change the base weights (PiSSA, OLoRA, LoftQ, CorDA) need their
  // residual base, which is not this model.
  if (const json* init = field(config, "init_lora_weights"))
    TS_CHECK(init->is_boolean() || (init->is_string() && init->get<std::string>() == "gaussian"),
             "{}: init_lora_weights is {}: an adapter whose initialisation changed the base weights needs that "
             "base; Tessera reads adapters initialised as true, false or \"gaussian\"", where, init->dump());
}

template <typename T>
T get(const json& config, const char* key, const std::string& where, T fallback, const char* expected) {
  const json* v = field(config, key);
  if (!v) return fallback;
  try {
    return v->get<T>();
  } catch (const json::exception&) {
    fail("{}: {}: expected {}, got {}", where, key, expected, v->dump());
  }
}

std::vector<std::string> names_of(const json& value, const std::string& where, const char* key) {
  if (value.is_string()) return {value.get<std::string>()};
  TS_CHECK(value.is_array(), "{}: {}: expected a list of module names, got {}", where, key, value.dump());
  std::vector<std::string> out;
  for (const json& v : value) {
    TS_CHECK(v.is_string(), "{}: {}: expected a list of module names, got {}", where, key, value.dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}

LoraOptions options_of(const json& config, const std::string& where) {
  TS_CHECK(config.is_object(), "{}: expected a JSON object", where);
  const std::string type = get<std::string>(config, "peft_type", where, "", "a string");
  TS_CHECK(type == "LORA", "{}: peft_type is \"{}\": Tessera reads LORA adapters only", where, type);
  if (const json* task = field(config, "task_type"))
    TS_CHECK(task->is_string() && task->get<std::string>() == "CAUSAL_LM",
             "{}: task_type is {}: Tessera reads CAUSAL_LM adapters only", where, task->dump());
  refuse_variants(config, where);
  LoraOptions o;
  o.r = get<int64_t>(config, "r", where, 8, "a positive integer");
  TS_CHECK(o.r >= 1, "{}: r: expected a positive integer, got {}", where, o.r);
  o.alpha = get<double>(config, "lora_alpha", where, 8.0, "a number");
  TS_CHECK(o.alpha > 0, "{}: lora_alpha: expected a positive number, got {}", where, o.alpha);
  o.dropout = get<double>(config, "lora_dropout", where, 0.0, "a number");
  TS_CHECK(o.dropout >= 0 && o.dropout < 1, "{}: lora_dropout: expected a number in [0, 1), got {}", where, o.dropout);
  o.use_rslora = get<bool>(config, "use_rslora", where, false, "true or false");
  const json* init = field(config, "init_lora_weights");
  o.init = init && init->is_string() ? "gaussian" : "peft";
  const json* targets = field(config, "target_modules");
  o.target_modules = targets ? names_of(*targets, where, "target_modules") : kPeftDefaultTargets;
  for (const std::string& t : o.target_modules) {
    const bool known = t == kAllLinear || std::find(std::begin(kProjectionNames), std::end(kProjectionNames), t) !=
                                              std::end(kProjectionNames);
    TS_CHECK(known, "{}: target_modules: '{}' is not a module Tessera adapts (all-linear, or q_proj, k_proj, v_proj, "
             "o_proj, gate_proj, up_proj, down_proj)", where, t);
  }
  if (const json* saved = field(config, "modules_to_save")) o.modules_to_save = names_of(*saved, where, "modules_to_save");
  if (const json* layers = field(config, "layers_to_transform")) {
    try {
      o.layers = layers->is_array() ? layers->get<std::vector<int64_t>>() : std::vector<int64_t>{layers->get<int64_t>()};
    } catch (const json::exception&) {
      fail("{}: layers_to_transform: expected a layer index or a list of them, got {}", where, layers->dump());
    }
  }
  return o;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  TS_CHECK(in, "{}: cannot be read", path);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}

}  // namespace

std::string peft_name(const std::string& name) { return kPrefix + name; }

PeftAdapter read_peft_adapter(const std::string& folder, const ModelConfig& config) {
  TS_CHECK(fs::is_directory(folder), "{}: not a folder (expected a PEFT adapter: {} and {})", folder, kPeftConfigFile,
           kPeftWeightsFile);
  const std::string config_path = (fs::path(folder) / kPeftConfigFile).string();
  const std::string weights_path = (fs::path(folder) / kPeftWeightsFile).string();
  TS_CHECK(fs::exists(config_path), "{}: missing (a PEFT adapter folder holds {} and {})", config_path,
           kPeftConfigFile, kPeftWeightsFile);
  TS_CHECK(fs::exists(weights_path), "{}: missing (a PEFT adapter folder holds {} and {})", weights_path,
           kPeftConfigFile, kPeftWeightsFile);
  const json j = read_json(config_path);
  PeftAdapter adapter{.options = options_of(j, config_path), .spec = {}, .base_model = {},
                      .weights = SafetensorsFile::open(weights_path)};
  if (const json* base = field(j, "base_model_name_or_path"); base && base->is_string())
    adapter.base_model = base->get<std::string>();
  adapter.spec = resolve(adapter.options, config, config_path);
  // Exactly the trainable tensors that configuration implies, shaped for this model.
  std::set<std::string> expected;
  for (const ParamSpec& p : lora_parameters(config, adapter.spec)) {
    if (!p.trainable) continue;
    const std::string name = peft_name(p.name);
    expected.insert(name);
    TS_CHECK(adapter.weights.contains(name), "{}: missing tensor '{}' {} (adapter_config.json implies it)", weights_path,
             name, shape_str(p.shape));
    const TensorInfo& info = adapter.weights.info(name);
    TS_CHECK(info.shape == p.shape, "{}: tensor '{}' has shape {}, this {} model takes {} (an adapter for another "
             "architecture or rank?)", weights_path, name, shape_str(info.shape), config.model_type, shape_str(p.shape));
    TS_CHECK(is_floating(info.dtype), "{}: tensor '{}' has dtype {}, expected a floating type", weights_path, name,
             dtype_name(info.dtype));
  }
  for (const std::string& name : adapter.weights.names())
    TS_CHECK(expected.count(name), "{}: unexpected tensor '{}' for this adapter_config.json and {} model", weights_path,
             name, config.model_type);
  return adapter;
}

void write_peft_adapter(const std::string& folder, const ModelConfig& config, const AdapterSpec& adapter,
                        const std::string& base_model, const std::function<Tensor(const ParamSpec&)>& values,
                        DType dtype) {
  TS_CHECK(!fs::exists(folder) || fs::is_empty(folder), "--out {}: exists and is not empty (nothing was overwritten)",
           folder);
  fs::create_directories(folder);
  std::vector<ParamSpec> tensors;
  for (const ParamSpec& p : lora_parameters(config, adapter))
    if (p.trainable) tensors.push_back(p);
  std::vector<TensorEntry> entries;
  for (const ParamSpec& p : tensors) entries.push_back({peft_name(p.name), dtype, p.shape});
  SafetensorsWriter writer((fs::path(folder) / kPeftWeightsFile).string(), entries, {{"format", "pt"}});
  for (const ParamSpec& p : tensors) writer.write(peft_name(p.name), ops::cast(values(p), dtype));
  writer.finish();

  std::vector<int64_t> layers;
  for (size_t l = 0; l < adapter.layers.size(); ++l)
    if (adapter.layers[l]) layers.push_back(static_cast<int64_t>(l));
  const std::vector<std::string> saved = adapter.saved_modules();
  const json j = {{"peft_type", "LORA"},
                  {"task_type", "CAUSAL_LM"},
                  {"r", adapter.r},
                  {"lora_alpha", adapter.alpha},
                  {"lora_dropout", adapter.dropout},
                  {"target_modules", adapter.target_names()},
                  {"use_rslora", adapter.use_rslora},
                  {"init_lora_weights", adapter.a_init == ParamInit::lora_gaussian ? json("gaussian") : json(true)},
                  {"layers_to_transform", layers.size() == adapter.layers.size() ? json(nullptr) : json(layers)},
                  {"bias", "none"},
                  {"modules_to_save", saved.empty() ? json(nullptr) : json(saved)},
                  {"base_model_name_or_path", base_model},
                  {"fan_in_fan_out", false},
                  {"inference_mode", true},
                  {"use_dora", false},
                  {"rank_pattern", json::object()},
                  {"alpha_pattern", json::object()}};
  write_file_atomically((fs::path(folder) / kPeftConfigFile).string(), j.dump(2) + "\n");
}

}  // namespace tessera::lora
