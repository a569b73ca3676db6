// The `tessera serve` config: what to serve, where, and with which limits. A YAML file read as
// strictly as job configs (unknown keys, wrong types and values out of range are one-line errors
// naming file:line and key); command-line flags and `--set key=value` override it. README.md
// documents each key.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

#include "engine/config/config_io.h"

namespace tessera::server {

struct EngineSection {  // the Generator's options (engine/inference/generator.h)
  int64_t max_batch_size = 64;
  int64_t max_batch_tokens = 2048;
  int64_t max_queue = 1024;
  int64_t max_model_len = 0;  // 0: the model's max_position_embeddings
  double kv_cache_gb = 0;     // 0: kv_cache_fraction of free GPU memory
  double kv_cache_fraction = 0.9;
  int64_t kv_block_size = 16;
  bool cuda_graphs = true;
  int64_t seed = 0;
  std::string chat_template;  // "" from the tokenizer
};

struct ServeConfig {
  std::string model;              // Hugging Face folder (config.json, safetensors, tokenizer.json)
  std::string served_model_name;  // what clients put in "model"; "" the folder's name
  YAML::Node adapters;            // name: LoRA adapter folder (PEFT)
  bool verify = true;             // weight files against SHA256SUMS (or `checksums`) before serving
  YAML::Node checksums;           // file name (in the model folder): SHA-256 hex, in place of SHA256SUMS
  std::string device = "auto";
  std::string dtype = "auto";   // bf16 on a GPU, fp32 on the CPU
  std::string lm_head_quant = "none";  // or a scheme: decode against a packed copy of lm_head
  std::string host = "127.0.0.1";
  int64_t port = 8000;
  int64_t threads = 128;          // HTTP connections served at once
  std::string api_keys_file;
  std::string api_key_env = "TESSERA_API_KEY";
  std::string tls_cert, tls_key;
  int64_t max_body_bytes = 1 << 20;
  int64_t max_prompt_tokens = 0;  // 0: up to the context length
  double request_timeout_s = 600;
  double drain_timeout_s = 30;
  double rate_limit_per_minute = 0;  // per API key; 0: off
  double rate_limit_burst = 0;       // 0: rate_limit_per_minute
  std::string log_file;
  int64_t log_max_size_mb = 100;
  int64_t log_max_files = 5;
  EngineSection engine;

  std::map<std::string, std::string> adapter_dirs() const;  // from `adapters`, checked on load
  std::map<std::string, std::string> checksum_map() const;  // from `checksums`
};

template <typename V> void describe(V& v, EngineSection& s) {
  v("max_batch_size", s.max_batch_size);
  v("max_batch_tokens", s.max_batch_tokens);
  v("max_queue", s.max_queue);
  v("max_model_len", s.max_model_len);
  v("kv_cache_gb", s.kv_cache_gb);
  v("kv_cache_fraction", s.kv_cache_fraction);
  v("kv_block_size", s.kv_block_size);
  v("cuda_graphs", s.cuda_graphs);
  v("seed", s.seed);
  v("chat_template", s.chat_template);
}
template <typename V> void describe(V& v, ServeConfig& c) {
  v("model", c.model);
  v("served_model_name", c.served_model_name);
  v("adapters", c.adapters);
  v("verify", c.verify);
  v("checksums", c.checksums);
  v("device", c.device, {"auto", "cpu", "cuda"});
  v("dtype", c.dtype, {"auto", "bf16", "fp32"});
  v("lm_head_quant", c.lm_head_quant, {"none", "int8", "int4", "q8_0", "q4_0"});
  v("host", c.host);
  v("port", c.port);
  v("threads", c.threads);
  v("api_keys_file", c.api_keys_file);
  v("api_key_env", c.api_key_env);
  v("tls_cert", c.tls_cert);
  v("tls_key", c.tls_key);
  v("max_body_bytes", c.max_body_bytes);
  v("max_prompt_tokens", c.max_prompt_tokens);
  v("request_timeout_s", c.request_timeout_s);
  v("drain_timeout_s", c.drain_timeout_s);
  v("rate_limit_per_minute", c.rate_limit_per_minute);
  v("rate_limit_burst", c.rate_limit_burst);
  v("log_file", c.log_file);
  v("log_max_size_mb", c.log_max_size_mb);
  v("log_max_files", c.log_max_files);
  v("engine", c.engine);
}

// Reads `path` ("" for the defaults), applies the `--set key=value` overrides, checks values;
// `model` must be set by then (the file, --set model=..., or --model through an override).
ServeConfig load_serve_config(const std::string& path, const std::vector<std::string>& overrides = {});

std::string to_yaml(const ServeConfig& config);

// `--lora NAME=DIR`: the adapter's name (checked as the `adapters` keys are) and folder; an Error
// naming the flag otherwise.
std::pair<std::string, std::string> parse_lora_flag(const std::string& flag);

}  // namespace tessera::server
