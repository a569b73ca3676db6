#include "fuzz/drivers.h"

#include "fuzz/fuzz_util.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "engine/config/job_config.h"
#include "engine/gguf_loader.h"
#include "engine/model_loader.h"
#include "engine/server/api_error.h"
#include "engine/server/openai_request.h"
#include "engine/server/serve_config.h"
#include "engine/gguf_model.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model_config.h"
#include "model/model_config_params.h"
#include "model/model_config_rope.h"

namespace tessera::fuzz {

namespace {

namespace fs = std::filesystem;

// A one-layer llama GGUF with a small byte-level vocabulary (a seed for the GGUF driver).
std::string tiny_gguf(const std::string& scratch, gguf::TensorType matrices) {
  using gguf::Value;
  const std::string path = (fs::path(scratch) / (matrices == gguf::TensorType::F32 ? "seed-f32.gguf" : "seed-q8.gguf")).string();
  fs::remove(path);
  const nlohmann::json config = {{"model_type", "llama"},      {"vocab_size", 6},         {"hidden_size", 32},
                                 {"intermediate_size", 32},    {"num_hidden_layers", 1},  {"num_attention_heads", 2},
                                 {"num_key_value_heads", 1},   {"max_position_embeddings", 64},
                                 {"rms_norm_eps", 1e-5},       {"tie_word_embeddings", true}};
  const ModelConfig c = ModelConfig::from_json(config);
  gguf::Metadata m;
  m.emplace_back("general.architecture", Value::string("llama"));
  m.emplace_back("llama.block_count", Value::u32(1));
  m.emplace_back("llama.context_length", Value::u32(64));
  m.emplace_back("llama.embedding_length", Value::u32(32));
  m.emplace_back("llama.feed_forward_length", Value::u32(32));
  m.emplace_back("llama.attention.head_count", Value::u32(2));
  m.emplace_back("llama.attention.head_count_kv", Value::u32(1));
  m.emplace_back("llama.attention.layer_norm_rms_epsilon", Value::f32(1e-5f));
  m.emplace_back("llama.rope.freq_base", Value::f32(10000.0f));
  m.emplace_back("llama.rope.dimension_count", Value::u32(16));
  m.emplace_back("tokenizer.ggml.model", Value::string("gpt2"));
  m.emplace_back("tokenizer.ggml.pre", Value::string("gpt-2"));
  m.emplace_back("tokenizer.ggml.tokens", Value::strings({"a", "b", "ab", "\xc4\xa0", "<s>", "</s>"}));
  m.emplace_back("tokenizer.ggml.token_type", Value::i32s({1, 1, 1, 1, 3, 3}));
  m.emplace_back("tokenizer.ggml.merges", Value::strings({"a b"}));
  m.emplace_back("tokenizer.ggml.bos_token_id", Value::u32(4));
  m.emplace_back("tokenizer.ggml.eos_token_id", Value::u32(5));
  m.emplace_back("tokenizer.ggml.add_bos_token", Value::boolean(true));
  std::vector<gguf::TensorDecl> decls;
  for (const ParamSpec& p : model_parameters(c)) {
    const bool matrix = p.shape.size() == 2 && p.shape[1] % 32 == 0 && p.name != "model.embed_tokens.weight";
    decls.push_back({gguf_tensor_name(p.name), matrix ? matrices : gguf::TensorType::F32, p.shape});
  }
  gguf::Writer writer(path, m, decls);
  for (const auto& d : decls) {
    std::string bytes(gguf::tensor_bytes(d.type, d.shape), '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 37 % 61);  // small finite values
    if (d.type == gguf::TensorType::F32)
      for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
        const float v = 0.01f * static_cast<float>(i % 17);
        std::memcpy(bytes.data() + i, &v, 4);
      }
    writer.write(d.name, bytes.data(), bytes.size());
  }
  writer.finish();
  return read(path);
}

std::vector<Driver> make_drivers() {
  std::vector<Driver> d;
  d.push_back({"safetensors", "SafetensorsFile::open, then every tensor read",
               [](const std::string&) { return files(kData + "/hf", "inputs.safetensors"); },
               [](const std::string& input, const std::string& scratch) {
                 const auto f = SafetensorsFile::open(write(scratch, "model.safetensors", input));
                 uint64_t sum = 0;
                 for (const auto& name : f.names()) sum += touch(f.tensor(name));
                 (void)sum;
               },
               tessera_error});
  d.push_back({"tokenizer", "Tokenizer::from_json, then encode and decode",
               [](const std::string&) { return files(kData + "/tokenizer", "tokenizer.json"); },
               [](const std::string& input, const std::string&) {
                 const auto t = tok::Tokenizer::from_json(input, "", "fuzz.json");
                 const auto ids = t.encode("Hello, wörld!  12 <s> \xe4\xbd\xa0\n", true);
                 (void)t.decode(ids, false);
               },
               tessera_error});
  d.push_back({"config_json", "ModelConfig::from_file, its parameters, RoPE and to_json",
               [](const std::string&) {
                 auto seeds = files(kData + "/hf_configs", ".json");
                 for (auto& s : files(kData + "/hf", "config.json")) seeds.push_back(std::move(s));
                 return seeds;
               },
               [](const std::string& input, const std::string& scratch) {
                 const ModelConfig c = ModelConfig::from_file(write(scratch, "config.json", input));
                 (void)model_parameters(c);
                 (void)rope_inv_freq(c);
                 (void)c.to_json().dump();
               },
               tessera_error});
  d.push_back({"job_yaml", "load_job_config (model.init included), then to_yaml",
               [](const std::string&) {
                 std::vector<std::string> seeds;
                 for (auto& s : files(kSource + "/configs", ".yaml"))
                   if (s.find("\nengine:") == std::string::npos && s.find("served_model_name") == std::string::npos)
                     seeds.push_back(std::move(s));
                 return seeds;
               },
               [](const std::string& input, const std::string& scratch) {
                 const JobConfig c = load_job_config(write(scratch, "job.yaml", input));
                 (void)to_yaml(c);
                 if (!c.model.init.IsNull()) (void)job_model_config(c.model);
               },
               tessera_error});
  d.push_back({"gguf", "gguf::File::open, every tensor read, the model config, tokenizer and weights",
               [](const std::string& scratch) {
                 return std::vector<std::string>{tiny_gguf(scratch, gguf::TensorType::F32),
                                                 tiny_gguf(scratch, gguf::TensorType::Q8_0)};
               },
               [](const std::string& input, const std::string& scratch) {
                 const std::string path = write(scratch, "model.gguf", input);
                 const gguf::File f = gguf::File::open(path);
                 uint64_t sum = 0;
                 for (const auto& t : f.tensors()) sum += touch(f.data(t));
                 (void)sum;
                 std::optional<Error> first;  // the config and the tokenizer fail independently
                 try {
                   (void)gguf_tokenizer(f).encode("ab ba", true);
                 } catch (const Error& e) {
                   first = e;
                 }
                 (void)gguf_model_config(f);
                 (void)load_gguf_model(path, DType::F32, Device::cpu());
                 if (first) throw *first;
               },
               tessera_error});
  d.push_back({"http_request", "server::parse_api_request (completions, or chat when the body has messages)",
               [](const std::string&) {
                 return std::vector<std::string>{
                     R"({"model": "tiny", "prompt": "Hello", "max_tokens": 16, "temperature": 0.7, "top_p": 0.9,
                         "stop": ["\n", "END"], "seed": 3, "stream": false, "logprobs": 2})",
                     R"({"prompt": [1, 2, 3, 4], "max_tokens": 1, "ignore_eos": true, "top_k": 40, "n": 1})",
                     R"({"model": "tiny", "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hi \u00e9"}], "max_tokens": 8, "stream": true,
                         "stream_options": {"include_usage": true}, "stop": "x"})",
                     R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
                         "logprobs": true, "top_logprobs": 3, "frequency_penalty": 0.5, "presence_penalty": -0.5})"};
               },
               [](const std::string& input, const std::string&) {
                 const bool chat = input.find("messages") != std::string::npos;
                 (void)server::parse_api_request(input, chat ? server::Endpoint::kChat : server::Endpoint::kCompletions);
               },
               [](const std::exception& e) {
                 const auto* api = dynamic_cast<const server::ApiError*>(&e);
                 return tessera_error(e) || (api && api->status >= 400 && api->status < 500);
               }});
  d.push_back({"serve_yaml", "server::load_serve_config, then to_yaml and the adapters",
               [](const std::string&) {
                 std::vector<std::string> seeds;
                 for (auto& s : files(kSource + "/configs", ".yaml"))
                   if (s.find("served_model_name") != std::string::npos || s.find("\nengine:") != std::string::npos)
                     seeds.push_back(std::move(s));
                 return seeds;
               },
               [](const std::string& input, const std::string& scratch) {
                 const server::ServeConfig c = server::load_serve_config(write(scratch, "serve.yaml", input));
                 (void)server::to_yaml(c);
                 (void)c.adapter_dirs();
               },
               tessera_error});
  return d;
}

}  // namespace

const std::vector<Driver>& drivers() {
  static const std::vector<Driver> all = [] {
    std::vector<Driver> d = make_drivers();
    add_model_file_drivers(d);
    add_text_file_drivers(d);
    return d;
  }();
  return all;
}

}  // namespace tessera::fuzz
