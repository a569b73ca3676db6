#include "model/model_config.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_error.h"

namespace tessera {

using nlohmann::json;

namespace {

// Typed access to config keys; every error names the source and the key. A key set to null
// counts as absent, as transformers treats it.
class Reader {
 public:
  Reader(const json& object, std::string source, std::string prefix = "")
      : j_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }

  int64_t integer(const char* key) const {
    const json& v = required(key);
    TS_CHECK(v.is_number_integer(), "{}: '{}{}' must be an integer, got {}", source_, prefix_, key, v.dump());
    if (v.is_number_unsigned())
      TS_CHECK(v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), "{}: '{}{}' is too large", source_, prefix_,
               key);
    return v.get<int64_t>();
  }
  int64_t integer(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  int64_t positive(const char* key) const { return check_positive(key, integer(key)); }
  int64_t positive(const char* key, int64_t fallback) const { return check_positive(key, integer(key, fallback)); }
  // A size: positive and at most `limit` (see model_limits).
  int64_t size(const char* key, int64_t limit) const { return check_limit(key, positive(key), limit); }
  int64_t size(const char* key, int64_t limit, int64_t fallback) const {
    return check_limit(key, positive(key, fallback), limit);
  }

  double number(const char* key) const {
    const json& v = required(key);
    TS_CHECK(v.is_number(), "{}: '{}{}' must be a number, got {}", source_, prefix_, key, v.dump());
    return v.get<double>();
  }
  double number(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }
  std::optional<double> optional_number(const char* key) const {
    return has(key) ? std::optional<double>(number(key)) : std::nullopt;
  }

  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    TS_CHECK(v->is_boolean(), "{}: '{}{}' must be true or false, got {}", source_, prefix_, key, v->dump());
    return v->get<bool>();
  }

  std::string string(const char* key) const {
    const json& v = required(key);
    TS_CHECK(v.is_string(), "{}: '{}{}' must be a string, got {}", source_, prefix_, key, v.dump());
    return v.get<std::string>();
  }
  std::string string(const char* key, const std::string& fallback) const { return has(key) ? string(key) : fallback; }

  // bos/eos ids: an integer, a list of integers, or absent.
  std::vector<int64_t> token_ids(const char* key) const {
    const json* v = find(key);
    if (!v) return {};
    if (v->is_number_integer()) return {v->get<int64_t>()};
    TS_CHECK(v->is_array(), "{}: '{}' must be an integer or a list of integers, got {}", source_, key, v->dump());
    std::vector<int64_t> ids;
    for (const json& id : *v) {
      TS_CHECK(id.is_number_integer(), "{}: '{}' must be an integer or a list of integers, got {}", source_, key,
               v->dump());
      ids.push_back(id.get<int64_t>());
    }
    return ids;
  }

 private:
  const json& required(const char* key) const {
    const json* v = find(key);
    TS_CHECK(v, "{}: missing '{}{}'", source_, prefix_, key);
    return *v;
  }
  int64_t check_positive(const char* key, int64_t value) const {
    TS_CHECK(value > 0, "{}: '{}{}' must be positive, got {}", source_, prefix_, key, value);
    return value;
  }
  int64_t check_limit(const char* key, int64_t value, int64_t limit) const {
    TS_CHECK(value <= limit, "{}: '{}{}' is {}, above the largest Tessera accepts ({})", source_, prefix_, key, value,
             limit);
    return value;
  }

  const json& j_;
  std::string source_;
  std::string prefix_;
};

ModelFamily parse_family(const std::string& model_type, const std::string& source) {
  if (model_type == "llama") return ModelFamily::Llama;
  if (model_type == "mistral") return ModelFamily::Mistral;
  if (model_type == "qwen2") return ModelFamily::Qwen2;
  if (model_type == "qwen3") return ModelFamily::Qwen3;
  fail("{}: model_type '{}' is not supported (expected llama, mistral, qwen2 or qwen3)", source, model_type);
}

// transformers' per-family defaults for keys a config.json may leave out.
int64_t default_max_positions(ModelFamily f) {
  switch (f) {
    case ModelFamily::Llama: return 2048;
    case ModelFamily::Mistral: return 4096 * 32;
    case ModelFamily::Qwen2:
    case ModelFamily::Qwen3: return 32768;
  }
  return 0;
}

const char* architecture(ModelFamily f) {
  switch (f) {
    case ModelFamily::Llama: return "LlamaForCausalLM";
    case ModelFamily::Mistral: return "MistralForCausalLM";
    case ModelFamily::Qwen2: return "Qwen2ForCausalLM";
    case ModelFamily::Qwen3: return "Qwen3ForCausalLM";
  }
  return "";
}

const char* rope_type_name(RopeScaling::Type t) {
  switch (t) {
    case RopeScaling::Type::Default: return "default";
    case RopeScaling::Type::Linear: return "linear";
    case RopeScaling::Type::Llama3: return "llama3";
    case RopeScaling::Type::Yarn: return "yarn";
  }
  return "";
}

// Reads `rope_scaling` / `rope_parameters` (whichever is present; newer transformers nest
// rope_theta inside rope_parameters).
void parse_rope(const Reader& top, ModelConfig& c, const std::string& source) {
  const char* key = top.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const json* params = top.find(key);
  c.rope_theta = top.number("rope_theta", 10000.0);
  TS_CHECK(top.number("partial_rotary_factor", 1.0) == 1.0, "{}: partial_rotary_factor other than 1 is not supported",
           source);
  if (!params) return;
  TS_CHECK(params->is_object(), "{}: '{}' must be an object, got {}", source, key, params->dump());
  const Reader r(*params, source, std::string(key) + ".");
  if (r.has("rope_theta")) c.rope_theta = r.number("rope_theta");
  TS_CHECK(r.number("partial_rotary_factor", 1.0) == 1.0, "{}: {}.partial_rotary_factor other than 1 is not supported",
           source, key);

  // "type" is the key older configs used for "rope_type".
  const std::string type = r.string("rope_type", r.string("type", "default"));
  RopeScaling& s = c.rope_scaling;
  if (type == "default" || type == "none") {
    s.type = RopeScaling::Type::Default;
    return;
  }
  if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::Llama3;
    s.low_freq_factor = r.number("low_freq_factor");
    s.high_freq_factor = r.number("high_freq_factor");
    s.original_max_position_embeddings = r.size("original_max_position_embeddings", model_limits::kPositions);
    TS_CHECK(s.low_freq_factor > 0 && s.high_freq_factor > s.low_freq_factor,
             "{}: {}.high_freq_factor ({}) must exceed low_freq_factor ({}), both positive", source, key,
             s.high_freq_factor, s.low_freq_factor);
  } else if (type == "yarn") {
    s.type = RopeScaling::Type::Yarn;
    if (r.has("original_max_position_embeddings"))
      s.original_max_position_embeddings = r.size("original_max_position_embeddings", model_limits::kPositions);
    // transformers uses `x or default`, so 0 also means the default.
    if (double v = r.number("beta_fast", 0.0); v != 0) s.beta_fast = v;
    if (double v = r.number("beta_slow", 0.0); v != 0) s.beta_slow = v;
    s.mscale = r.optional_number("mscale");
    s.mscale_all_dim = r.optional_number("mscale_all_dim");
    s.attention_factor = r.optional_number("attention_factor");
    s.truncate = r.boolean("truncate", true);
  } else {
    fail("{}: {}.rope_type '{}' is not supported (expected default, linear, llama3 or yarn)", source, key, type);
  }
  // yarn may derive its factor from the extended / original context lengths.
  if (s.type == RopeScaling::Type::Yarn && !r.has("factor") && s.original_max_position_embeddings)
    s.factor = static_cast<double>(c.max_position_embeddings) / *s.original_max_position_embeddings;
  else
    s.factor = r.number("factor");
  TS_CHECK(s.factor > 0, "{}: {}.factor must be positive, got {}", source, key, s.factor);
}

}  // namespace

ModelConfig ModelConfig::from_file(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  std::ifstream in(file, std::ios::binary);
  TS_CHECK(in, "{}: cannot open", file);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file, json_parse_message(e));
  }
  return from_json(j, file);
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  TS_CHECK(j.is_object(), "{}: expected a JSON object", source);
  const Reader r(j, source);
  ModelConfig c;
  c.model_type = r.string("model_type");
  c.family = parse_family(c.model_type, source);

  namespace limits = model_limits;
  c.vocab_size = r.size("vocab_size", limits::kVocab);
  c.hidden_size = r.size("hidden_size", limits::kHidden);
  c.intermediate_size = r.size("intermediate_size", limits::kIntermediate);
  c.num_hidden_layers = r.size("num_hidden_layers", limits::kLayers);
  c.num_attention_heads = r.size("num_attention_heads", limits::kHeads);
  c.num_key_value_heads = r.size("num_key_value_heads", limits::kHeads, c.num_attention_heads);
  TS_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
           "{}: num_attention_heads ({}) must be divisible by num_key_value_heads ({})", source,
           c.num_attention_heads, c.num_key_value_heads);
  if (r.has("head_dim")) {
    c.head_dim = r.size("head_dim", limits::kHeadDim);
  } else if (c.family == ModelFamily::Qwen3) {
    c.head_dim = 128;  // Qwen3Config's default, independent of hidden_size
  } else {
    TS_CHECK(c.hidden_size % c.num_attention_heads == 0,
             "{}: hidden_size ({}) must be divisible by num_attention_heads ({}) when head_dim is not given",
             source, c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  TS_CHECK(c.head_dim <= limits::kHeadDim, "{}: head_dim (hidden_size / num_attention_heads = {}) is above the largest "
           "Tessera accepts ({})", source, c.head_dim, limits::kHeadDim);
  TS_CHECK(c.head_dim % 2 == 0, "{}: head_dim ({}) must be even for rotary embeddings", source, c.head_dim);

  c.max_position_embeddings = r.size("max_position_embeddings", limits::kPositions, default_max_positions(c.family));
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  TS_CHECK(c.rms_norm_eps > 0, "{}: 'rms_norm_eps' must be positive, got {}", source, c.rms_norm_eps);
  parse_rope(r, c, source);
  TS_CHECK(c.rope_theta > 0, "{}: 'rope_theta' must be positive, got {}", source, c.rope_theta);

  c.hidden_act = r.string("hidden_act", "silu");
  TS_CHECK(c.hidden_act == "silu", "{}: hidden_act '{}' is not supported (these models use 'silu')", source,
           c.hidden_act);
  TS_CHECK(!r.boolean("mlp_bias", false), "{}: 'mlp_bias' true is not supported", source);

  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  if (c.family == ModelFamily::Llama || c.family == ModelFamily::Qwen3)
    c.attention_bias = r.boolean("attention_bias", false);
  c.qk_norm = c.family == ModelFamily::Qwen3;

  // Qwen's sliding_window only applies with use_sliding_window; Mistral's whenever it is set.
  const bool qwen = c.family == ModelFamily::Qwen2 || c.family == ModelFamily::Qwen3;
  if (c.family != ModelFamily::Llama && (!qwen || r.boolean("use_sliding_window", false)) &&
      r.has("sliding_window"))
    c.sliding_window = r.size("sliding_window", limits::kPositions);

  // Newer transformers write "dtype", older ones "torch_dtype".
  c.torch_dtype = r.string("dtype", r.string("torch_dtype", ""));
  c.bos_token_ids = r.token_ids("bos_token_id");
  c.eos_token_ids = r.token_ids("eos_token_id");
  return c;
}

const std::vector<std::string>& ModelConfig::json_keys() {
  static const std::vector<std::string> keys{
      "architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
      "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps",
      "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor", "hidden_act", "mlp_bias",
      "tie_word_embeddings", "attention_bias", "use_sliding_window", "sliding_window", "dtype", "torch_dtype",
      "bos_token_id", "eos_token_id"};
  return keys;
}

bool ModelConfig::qkv_bias() const { return family == ModelFamily::Qwen2 || attention_bias; }

bool ModelConfig::o_proj_bias() const { return attention_bias; }

json ModelConfig::to_json() const {
  json j;
  j["architectures"] = {architecture(family)};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = hidden_act;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (family == ModelFamily::Llama || family == ModelFamily::Qwen3) j["attention_bias"] = attention_bias;
  if (family == ModelFamily::Qwen2 || family == ModelFamily::Qwen3)
    j["use_sliding_window"] = sliding_window.has_value();
  j["sliding_window"] = sliding_window ? json(*sliding_window) : json(nullptr);

  const RopeScaling& s = rope_scaling;
  if (s.type == RopeScaling::Type::Default) {
    j["rope_scaling"] = nullptr;
  } else {
    json rope = {{"rope_type", rope_type_name(s.type)}, {"factor", s.factor}};
    if (s.original_max_position_embeddings)
      rope["original_max_position_embeddings"] = *s.original_max_position_embeddings;
    if (s.type == RopeScaling::Type::Llama3) {
      rope["low_freq_factor"] = s.low_freq_factor;
      rope["high_freq_factor"] = s.high_freq_factor;
    }
    if (s.type == RopeScaling::Type::Yarn) {
      rope["beta_fast"] = s.beta_fast;
      rope["beta_slow"] = s.beta_slow;
      rope["truncate"] = s.truncate;
      if (s.mscale) rope["mscale"] = *s.mscale;
      if (s.mscale_all_dim) rope["mscale_all_dim"] = *s.mscale_all_dim;
      if (s.attention_factor) rope["attention_factor"] = *s.attention_factor;
    }
    j["rope_scaling"] = rope;
  }

  auto ids = [](const std::vector<int64_t>& v) {
    if (v.empty()) return json(nullptr);
    return v.size() == 1 ? json(v[0]) : json(v);
  };
  j["bos_token_id"] = ids(bos_token_ids);
  j["eos_token_id"] = ids(eos_token_ids);
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;
  return j;
}

}  // namespace tessera
