// `tessera serve --config serve.yaml` or `tessera serve --model DIR [--port 8000] [--api-key KEY]`:
// the OpenAI-compatible HTTP service (engine/server) over the inference engine
// (engine/inference). The port is bound first (health answers 503 while the model loads), the
// weights are verified and loaded, then requests are served until SIGTERM/SIGINT: new requests
// get 503, those in flight finish within drain_timeout_s (the rest are cancelled), exit 0.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/inference/generator.h"
#include "engine/inference/model_files.h"
#include "engine/metrics/gpu_metrics.h"
#include "engine/sha256sums.h"
#include "engine/server/api_service.h"
#include "engine/server/generator_backend.h"
#include "engine/server/http_server.h"
#include "engine/server/serve_config.h"
#include "lora/adapter_bank_loader.h"
#include "model/inference_model.h"

namespace tessera::cli {

namespace {

namespace fs = std::filesystem;

struct ServeArgs {
  std::string config, model, host, api_key, device, lm_head_quant;
  int64_t port = -1;
  bool no_verify = false;
  std::vector<std::string> overrides, loras;  // --set key=value, --lora NAME=DIR
};

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }

server::ServeConfig serve_config(const ServeArgs& a) {
  std::vector<std::string> overrides;  // the flags are overrides, applied before --set
  if (!a.model.empty()) overrides.push_back("model=" + a.model);
  if (a.port >= 0) overrides.push_back("port=" + std::to_string(a.port));
  if (!a.host.empty()) overrides.push_back("host=" + a.host);
  if (!a.device.empty()) overrides.push_back("device=" + a.device);
  if (a.no_verify) overrides.push_back("verify=false");
  if (!a.lm_head_quant.empty()) overrides.push_back("lm_head_quant=" + a.lm_head_quant);
  overrides.insert(overrides.end(), a.overrides.begin(), a.overrides.end());
  return server::load_serve_config(a.config, overrides);
}

server::ApiKeys api_keys(const server::ServeConfig& c, const std::string& flag) {
  server::ApiKeys keys;
  if (!flag.empty()) keys.add(flag, "cli");
  if (const char* env = c.api_key_env.empty() ? nullptr : std::getenv(c.api_key_env.c_str()); env && *env)
    keys.add(env, "env");
  if (!c.api_keys_file.empty()) keys.add_file(c.api_keys_file);
  if (keys.empty())
    spdlog::warn("serve: no API key (--api-key, ${} or api_keys_file): anyone who reaches the port may use it",
                 c.api_key_env);
  return keys;
}

// The adapters to serve: the config's `adapters`, then --lora NAME=DIR (which replaces one of
// the same name), in name order.
std::vector<std::pair<std::string, std::string>> adapter_folders(const server::ServeConfig& c, const ServeArgs& a,
                                                                 const std::string& model_name) {
  std::map<std::string, std::string> dirs = c.adapter_dirs();
  for (const std::string& flag : a.loras) {
    const auto [name, dir] = server::parse_lora_flag(flag);
    TS_CHECK(name != model_name, "--lora {}: '{}' is the base model's own name", flag, name);
    dirs[name] = dir;
  }
  return {dirs.begin(), dirs.end()};
}

// Each adapter's files against its SHA256SUMS (when it has one), then all of them stacked for
// batched serving on the model; an adapter that does not fit the base is one error naming it.
void load_adapters(InferenceModel& model, const std::vector<std::pair<std::string, std::string>>& folders,
                   bool verify) {
  if (folders.empty()) return;
  for (const auto& [name, dir] : folders) {
    if (!verify) continue;
    const int verified = with_context(fmt::format("adapter '{}'", name), [&] { return verify_sha256sums(dir); });
    if (verified > 0) spdlog::info("serve: adapter '{}': {} file(s) match {}", name, verified, kSha256SumsFile);
  }
  model.set_adapters(std::make_shared<const AdapterBank>(
      lora::load_adapter_bank(model.config(), folders, model.dtype(), model.device())));
  for (const auto& [name, dir] : folders) spdlog::info("serve: adapter '{}' from {}", name, dir);
}

inference::GeneratorOptions generator_options(const server::EngineSection& e) {
  inference::GeneratorOptions o;
  o.max_batch_size = e.max_batch_size;
  o.max_batch_tokens = e.max_batch_tokens;
  o.max_queue = e.max_queue;
  o.block_size = e.kv_block_size;
  o.kv_cache_gb = e.kv_cache_gb;
  o.kv_cache_fraction = e.kv_cache_fraction;
  o.max_seq_len = e.max_model_len;
  return o;
}

void run_serve(const ServeArgs& args) {
  const server::ServeConfig c = serve_config(args);
  if (!c.log_file.empty()) add_log_file(c.log_file, static_cast<size_t>(c.log_max_size_mb) << 20, c.log_max_files);
  const Device device = c.device == "cpu" ? Device::cpu() : c.device == "cuda" ? Device::cuda(0)
                        : cuda_device_count() > 0                              ? Device::cuda(0)
                                                                                : Device::cpu();
  const DType dtype = c.dtype == "fp32" || (c.dtype == "auto" && device.is_cpu()) ? DType::F32 : DType::BF16;

  metrics::Registry registry;
  metrics::add_gpu_metrics(registry);
  server::ServiceOptions options;
  options.model_name = c.served_model_name.empty() ? fs::path(c.model).filename().string() : c.served_model_name;
  const auto adapters = adapter_folders(c, args, options.model_name);
  for (const auto& entry : adapters) options.adapters.push_back(entry.first);
  options.keys = api_keys(c, args.api_key);
  options.max_body_bytes = c.max_body_bytes;
  options.max_prompt_tokens = c.max_prompt_tokens;
  options.request_timeout_s = c.request_timeout_s;
  options.rate_limit_per_minute = c.rate_limit_per_minute;
  options.rate_limit_burst = c.rate_limit_burst;
  server::ApiService service(options, registry);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  // Bound before loading: a port in use fails at once, and /health says "loading" meanwhile.
  auto http = std::make_unique<server::HttpServer>(
      service, server::HttpOptions{.host = c.host, .port = static_cast<int>(c.port), .threads = static_cast<int>(c.threads),
                                   .max_body_bytes = c.max_body_bytes, .tls_cert = c.tls_cert, .tls_key = c.tls_key});
  spdlog::info("serve: listening on {}://{}:{}", c.tls_cert.empty() ? "http" : "https", c.host, http->port());

  inference::LoadedInferenceModel loaded = inference::load_inference_model(
      {.model = c.model, .device = device, .dtype = dtype, .verify = c.verify, .checksums = c.checksum_map()});
  loaded.model->set_options({.cuda_graphs = c.engine.cuda_graphs});
  if (c.lm_head_quant != "none") loaded.model->quantize_lm_head({parse_quant_scheme(c.lm_head_quant)});
  load_adapters(*loaded.model, adapters, c.verify);
  inference::Generator generator(loaded.model, loaded.tokenizer, generator_options(c.engine));
  server::GeneratorBackend backend(generator, loaded.tokenizer, c.engine.chat_template);
  service.set_backend(&backend);
  spdlog::info("serve: ready: {} as \"{}\"{} on {} ({}), context {} tokens", c.model, options.model_name,
               adapters.empty() ? "" : fmt::format(" with {} adapter(s)", adapters.size()), device.str(),
               dtype_name(dtype), backend.context_length());

  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  spdlog::info("serve: {} received, draining (up to {} s)", g_signal == SIGINT ? "SIGINT" : "SIGTERM", c.drain_timeout_s);
  const bool drained = service.drain(std::chrono::milliseconds(static_cast<int64_t>(c.drain_timeout_s * 1000)));
  if (!drained) spdlog::warn("serve: the drain timeout passed; the requests left were cancelled");
  http.reset();      // stops accepting, waits for the connections being served
  generator.stop();
  spdlog::info("serve: stopped");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  auto args = std::make_shared<ServeArgs>();
  cmd->add_option("--config", args->config, "a serve config (YAML; README \"Serving\" lists its keys)");
  cmd->add_option("--model", args->model, "a Hugging Face model folder or a Tessera checkpoint (sets model)");
  cmd->add_option("--port", args->port, "the port (0: any free one; sets port)")->check(in_range(0, 65535));
  cmd->add_option("--host", args->host, "the address to listen on (sets host)");
  cmd->add_option("--api-key", args->api_key, "a key clients must send as 'Authorization: Bearer KEY'");
  cmd->add_option("--device", args->device, "auto, cpu or cuda (sets device)");
  cmd->add_flag("--no-verify", args->no_verify, "do not check the weight files against SHA256SUMS / checksums (sets verify: false)");
  add_lm_head_quant_flag(cmd, args->lm_head_quant, "lm_head_quant");
  cmd->add_option("--lora", args->loras,
                  "serve a PEFT LoRA adapter as NAME=DIR (repeatable; requests pick it by \"model\": NAME)");
  cmd->add_option("--set", args->overrides, "override a config key: --set key=value (repeatable)");
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace tessera::cli
