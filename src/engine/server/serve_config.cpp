#include "engine/server/serve_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace tessera::server {

namespace {

bool valid_adapter_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

void check_ranges(const ServeConfig& c, const config::RangeChecks& check) {
  check.require(!c.model.empty(), "model", "is required: a Hugging Face model folder (or --model DIR)");
  check.require(c.port >= 0 && c.port <= 65535, "port", fmt::format("must be 0 to 65535, got {}", c.port));
  check.require(c.threads >= 1 && c.threads <= 4096, "threads", fmt::format("must be 1 to 4096, got {}", c.threads));
  check.require(c.tls_cert.empty() == c.tls_key.empty(), c.tls_cert.empty() ? "tls_key" : "tls_cert",
                "tls_cert and tls_key go together");
  check.require(c.max_body_bytes >= 1024, "max_body_bytes", fmt::format("must be at least 1024, got {}", c.max_body_bytes));
  check.require(c.max_prompt_tokens >= 0, "max_prompt_tokens",
                fmt::format("must be >= 0 (0: the context length), got {}", c.max_prompt_tokens));
  check.require(c.request_timeout_s > 0, "request_timeout_s", fmt::format("must be positive, got {}", c.request_timeout_s));
  check.require(c.drain_timeout_s >= 0, "drain_timeout_s", fmt::format("must be >= 0, got {}", c.drain_timeout_s));
  check.require(c.rate_limit_per_minute >= 0, "rate_limit_per_minute",
                fmt::format("must be >= 0 (0: off), got {}", c.rate_limit_per_minute));
  check.require(c.rate_limit_burst >= 0, "rate_limit_burst", fmt::format("must be >= 0, got {}", c.rate_limit_burst));
  check.require(c.log_max_size_mb >= 1, "log_max_size_mb", fmt::format("must be at least 1, got {}", c.log_max_size_mb));
  check.require(c.log_max_files >= 1, "log_max_files", fmt::format("must be at least 1, got {}", c.log_max_files));
  const auto& e = c.engine;
  check.require(e.max_batch_size >= 1, "engine.max_batch_size", fmt::format("must be at least 1, got {}", e.max_batch_size));
  check.require(e.max_batch_tokens >= 1, "engine.max_batch_tokens",
                fmt::format("must be at least 1, got {}", e.max_batch_tokens));
  check.require(e.max_queue >= 1, "engine.max_queue", fmt::format("must be at least 1, got {}", e.max_queue));
  check.require(e.max_model_len >= 0, "engine.max_model_len", fmt::format("must be >= 0, got {}", e.max_model_len));
  check.require(e.kv_cache_gb >= 0, "engine.kv_cache_gb", fmt::format("must be >= 0, got {}", e.kv_cache_gb));
  check.require(e.kv_cache_fraction > 0 && e.kv_cache_fraction <= 1, "engine.kv_cache_fraction",
                fmt::format("must be in (0, 1], got {}", e.kv_cache_fraction));
  check.require(e.kv_block_size >= 1 && e.kv_block_size <= 1024, "engine.kv_block_size",
                fmt::format("must be 1 to 1024, got {}", e.kv_block_size));
  check.require(e.chat_template.empty() || e.chat_template == "chatml" || e.chat_template == "qwen3" ||
                    e.chat_template == "llama3" || e.chat_template == "deepseek",
                "engine.chat_template", "expected chatml, qwen3, llama3, deepseek or empty, got \"" + e.chat_template + "\"");
  const bool adapters_ok = !c.adapters || c.adapters.IsNull() || c.adapters.IsMap();
  check.require(adapters_ok, "adapters", "must be a mapping of adapter names to folders");
  if (!adapters_ok || !c.adapters || c.adapters.IsNull()) return;
  for (const auto& entry : c.adapters) {
    const std::string name = entry.first.Scalar();
    check.require(valid_adapter_name(name), "adapters." + name, "names are letters, digits, '-', '_' and '.'");
    check.require(entry.second.IsScalar() && !entry.second.Scalar().empty(), "adapters." + name,
                  "expected the adapter's folder");
    check.require(name != c.served_model_name, "adapters." + name, "is the base model's own name");
  }
}

bool sha256_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; });
}

void check_checksums(const ServeConfig& c, const config::RangeChecks& check) {
  const bool ok = !c.checksums || c.checksums.IsNull() || c.checksums.IsMap();
  check.require(ok, "checksums", "must be a mapping of file names to SHA-256 hex digests");
  if (!ok || !c.checksums || c.checksums.IsNull()) return;
  for (const auto& entry : c.checksums) {
    const std::string name = entry.first.Scalar();
    check.require(entry.second.IsScalar() && sha256_hex(entry.second.Scalar()), "checksums." + name,
                  "expected 64 hex digits (sha256sum's output)");
  }
}

}  // namespace

std::map<std::string, std::string> ServeConfig::adapter_dirs() const {
  std::map<std::string, std::string> out;
  if (adapters && adapters.IsMap())
    for (const auto& entry : adapters) out[entry.first.Scalar()] = entry.second.Scalar();
  return out;
}

std::map<std::string, std::string> ServeConfig::checksum_map() const {
  std::map<std::string, std::string> out;
  if (checksums && checksums.IsMap())
    for (const auto& entry : checksums) out[entry.first.Scalar()] = entry.second.Scalar();
  return out;
}

std::pair<std::string, std::string> parse_lora_flag(const std::string& flag) {
  const auto eq = flag.find('=');
  TS_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < flag.size(), "--lora {}: expected NAME=DIR", flag);
  const std::string name = flag.substr(0, eq);
  TS_CHECK(valid_adapter_name(name), "--lora {}: adapter names are letters, digits, '-', '_' and '.'", flag);
  return {name, flag.substr(eq + 1)};
}

ServeConfig load_serve_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Source source{path, {}};
  YAML::Node root = path.empty() ? YAML::Node(YAML::NodeType::Map) : config::load_yaml_file(path);
  for (const auto& assignment : overrides) config::apply_override(root, assignment, source);
  ServeConfig config;
  config::read_config(root, source, config);
  check_ranges(config, config::RangeChecks(root, source));
  check_checksums(config, config::RangeChecks(root, source));
  return config;
}

std::string to_yaml(const ServeConfig& config) { return config::write_config(config); }

}  // namespace tessera::server
