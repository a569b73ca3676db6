#include "engine/config/job_config.h"

#include <algorithm>

#include "engine/config/yaml_json.h"
#include "model/model_config.h"

namespace tessera {

namespace {

void check_offload(const OffloadSection& o, const std::string& key, const config::RangeChecks& check) {
  check.require(o.device != "nvme" || !o.path.empty(), key + ".path", "is required when " + key + ".device is nvme");
  check.require(o.pinned_buffer_mb >= 1, key + ".pinned_buffer_mb",
                fmt::format("must be at least 1, got {}", o.pinned_buffer_mb));
  // O_DIRECT moves whole 4 KiB pages; a request is one io_uring operation (below 2 GiB).
  check.require(o.io_block_kb >= 4 && o.io_block_kb % 4 == 0 && o.io_block_kb <= 1048576, key + ".io_block_kb",
                fmt::format("must be a multiple of 4 from 4 to 1048576 (1 GiB), got {}", o.io_block_kb));
  check.require(o.io_queue_depth >= 1 && o.io_queue_depth <= 4096, key + ".io_queue_depth",
                fmt::format("must be 1 to 4096, got {}", o.io_queue_depth));
  check.require(o.units_in_flight >= 1, key + ".units_in_flight",
                fmt::format("must be at least 1, got {}", o.units_in_flight));
}

// What can be said without the model; lora::resolve checks the rest (layers, tied lm_head).
void check_lora(const LoraSection& l, const config::RangeChecks& check) {
  check.require(l.r >= 1, "lora.r", fmt::format("must be at least 1, got {}", l.r));
  check.require(l.alpha > 0, "lora.alpha", fmt::format("must be positive, got {}", l.alpha));
  check.require(l.dropout >= 0 && l.dropout < 1, "lora.dropout", fmt::format("must be in [0, 1), got {}", l.dropout));
  const auto& names = lora::kProjectionNames;
  const bool all = l.target_modules.size() == 1 && l.target_modules[0] == lora::kAllLinear;
  for (const std::string& m : l.target_modules)
    check.require(all || std::find(std::begin(names), std::end(names), m) != std::end(names), "lora.target_modules",
                  fmt::format("unknown module '{}': expected all-linear (alone) or a list of q_proj, k_proj, v_proj, "
                              "o_proj, gate_proj, up_proj, down_proj", m));
  check.require(!l.target_modules.empty(), "lora.target_modules", "must name at least one module (or all-linear)");
  for (int64_t layer : l.layers)
    check.require(layer >= 0, "lora.layers", fmt::format("layer indices count from 0, got {}", layer));
  for (const std::string& m : l.modules_to_save)
    check.require(m == "embed_tokens" || m == "lm_head", "lora.modules_to_save",
                  fmt::format("unknown module '{}': expected embed_tokens or lm_head", m));
}

// What can be said without the model; resolve_qat checks the rest (groups against the shapes).
void check_qat(const QatOptions& q, const config::RangeChecks& check) {
  check.require(q.weights != "int4" || q.group_size == 32 || q.group_size == 64 || q.group_size == 128,
                "quant.qat.group_size", fmt::format("int4 groups are 32, 64 or 128, got {}", q.group_size));
  check.require(q.symmetric || q.weights == "int4", "quant.qat.symmetric",
                fmt::format("only int4 has an asymmetric form, not {}", q.weights));
  check.require(q.start_step >= 0, "quant.qat.start_step", fmt::format("must be >= 0, got {}", q.start_step));
  check.require(!q.modules.empty(), "quant.qat.modules", "must name at least one module (or all-linear)");
  for (const std::string& m : q.modules) {
    check.require(known_quant_module(m), "quant.qat.modules",
                  fmt::format("unknown module '{}' (expected {})", m, kQuantModuleChoices));
    check.require(!q.learnable_scales || (m != "embed_tokens" && m != "lm_head"), "quant.qat.learnable_scales",
                  fmt::format("learns the scales of projections only, and quant.qat.modules names {} (use fixed "
                              "scales for it, or leave it out)", m));
  }
}

// model.init is written by hand: a key config.json readers do not know is a typo, not an extra.
// The architecture is parsed here, so that its errors (sizes beyond model_limits included) come
// before anything runs, naming where the file or a --set gives the key.
void check_model_init(const YAML::Node& init, const config::RangeChecks& check) {
  const std::vector<std::string>& known = ModelConfig::json_keys();
  for (const auto& entry : init) {
    const std::string key = entry.first.Scalar();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string suggestion = config::closest(key, known);
    check.require(false, "model.init." + key,
                  "unknown key" + (suggestion.empty() ? "" : " (did you mean 'model.init." + suggestion + "'?)") +
                      ": model.init takes config.json keys");
  }
  ModelConfig::from_json(config::yaml_to_json(init, "model.init", &check.source()),
                         check.where("model.init") + ": model.init");
}

void check_ranges(const JobConfig& c, const config::RangeChecks& check) {
  const auto& t = c.train;
  check.require(t.steps >= 1, "train.steps", fmt::format("must be at least 1, got {}", t.steps));
  check.require(t.stop_after >= 0, "train.stop_after", fmt::format("must be >= 0 (0: off), got {}", t.stop_after));
  // A decay that ends at lr 0 on the only step would train nothing.
  check.require(t.schedule.type == "constant" || t.schedule.warmup_steps > 0 || t.schedule.min_lr > 0 || t.steps > 1,
                "train.schedule", fmt::format("a {} schedule over 1 step with no warmup decays to min_lr 0 at that "
                                              "step, so nothing would be trained: use type constant, warmup_steps, "
                                              "min_lr > 0 or more steps", t.schedule.type));
  check.require(t.micro_batch_size >= 1, "train.micro_batch_size",
                fmt::format("must be at least 1, got {}", t.micro_batch_size));
  check.require(t.grad_accum >= 1, "train.grad_accum", fmt::format("must be at least 1, got {}", t.grad_accum));
  check.require(t.lr > 0, "train.lr", fmt::format("must be positive, got {}", t.lr));
  check.require(t.weight_decay >= 0, "train.weight_decay", fmt::format("must be >= 0, got {}", t.weight_decay));
  check.require(t.betas.size() == 2 && t.betas[0] >= 0 && t.betas[0] < 1 && t.betas[1] >= 0 && t.betas[1] < 1,
                "train.betas", "must be two numbers in [0, 1), e.g. [0.9, 0.95]");
  check.require(t.eps > 0, "train.eps", fmt::format("must be positive, got {}", t.eps));
  check.require(t.clip_grad_norm >= 0, "train.clip_grad_norm",
                fmt::format("must be >= 0 (0 turns clipping off), got {}", t.clip_grad_norm));
  check.require(t.recompute_norms_swiglu_layers >= 0, "train.recompute_norms_swiglu_layers",
                fmt::format("must be >= 0 (0: every layer), got {}", t.recompute_norms_swiglu_layers));
  check.require(t.recompute_norms_swiglu_layers == 0 || t.recompute_norms_swiglu, "train.recompute_norms_swiglu_layers",
                "counts the layers train.recompute_norms_swiglu recomputes: set that to true too");
  check.require(t.collective_timeout_s >= 0, "train.collective_timeout_s",
                fmt::format("must be >= 0 (0 turns the watchdog off), got {}", t.collective_timeout_s));
  check.require(t.schedule.warmup_steps >= 0, "train.schedule.warmup_steps",
                fmt::format("must be >= 0, got {}", t.schedule.warmup_steps));
  check.require(t.schedule.min_lr >= 0 && t.schedule.min_lr <= t.lr, "train.schedule.min_lr",
                fmt::format("must be between 0 and train.lr ({}), got {}", t.lr, t.schedule.min_lr));
  check.require(c.data.seq_len >= 2, "data.seq_len", fmt::format("must be at least 2, got {}", c.data.seq_len));
  const auto& z = c.zero;
  check.require(z.stage >= 0 && z.stage <= 3, "zero.stage", fmt::format("must be 0, 1, 2 or 3, got {}", z.stage));
  check.require(z.prefetch >= 0, "zero.prefetch", fmt::format("must be >= 0, got {}", z.prefetch));
  check.require(z.reduce_bucket_mb > 0, "zero.reduce_bucket_mb",
                fmt::format("must be positive, got {}", z.reduce_bucket_mb));
  check.require(z.persist_below >= 0, "zero.persist_below", fmt::format("must be >= 0, got {}", z.persist_below));
  check_offload(z.offload_optimizer, "zero.offload_optimizer", check);
  check_offload(z.offload_params, "zero.offload_params", check);
  check.require(c.checkpoint.every_steps >= 0, "checkpoint.every_steps",
                fmt::format("must be >= 0, got {}", c.checkpoint.every_steps));
  check.require(c.checkpoint.keep_last >= 0, "checkpoint.keep_last",
                fmt::format("must be >= 0, got {}", c.checkpoint.keep_last));
  check.require(c.log.every_steps >= 1, "log.every_steps", fmt::format("must be at least 1, got {}", c.log.every_steps));
  check.require(c.log.metrics_port >= 0 && c.log.metrics_port <= 65535, "log.metrics_port",
                fmt::format("must be a TCP port, 1 to 65535 (0: off), got {}", c.log.metrics_port));
  check.require(!c.log.metrics_host.empty(), "log.metrics_host", "must name an address to listen on (127.0.0.1, 0.0.0.0, ...)");
  check.require(c.eval.every_steps >= 0, "eval.every_steps", fmt::format("must be >= 0, got {}", c.eval.every_steps));
  check.require(c.eval.batches >= 1, "eval.batches", fmt::format("must be at least 1, got {}", c.eval.batches));
  check.require(c.model.path.empty() || c.model.init.IsNull(), "model.init",
                "give either model.path or model.init, not both");
  check.require(c.model.init.IsNull() || c.model.init.IsMap(), "model.init",
                "must be a mapping of config.json keys (hidden_size, num_hidden_layers, ...)");
  if (c.model.init.IsMap()) check_model_init(c.model.init, check);
  if (c.lora) check_lora(*c.lora, check);
  if (c.quant.qat) check_qat(*c.quant.qat, check);
  // QAT with LoRA fake-quantizes the merged W + s B A (model/linear.h): a dense base, no dropout.
  if (c.quant.qat && c.lora) {
    check.require(c.lora->base_quant == "none", "lora.base_quant",
                  fmt::format("{} cannot be combined with quant.qat (a packed base is not fake-quantized); use none",
                              c.lora->base_quant));
    check.require(c.lora->dropout == 0, "lora.dropout",
                  "must be 0 with quant.qat (the merged W + s B A is fake-quantized: the adapter has no input of its "
                  "own to drop)");
    const auto& m = c.quant.qat->modules;
    check.require(c.lora->frozen_embedding == "device" || std::find(m.begin(), m.end(), "embed_tokens") == m.end(),
                  "lora.frozen_embedding", "must be device when quant.qat.modules fake-quantizes embed_tokens");
  }
}

}  // namespace

JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Source source{path, {}};
  YAML::Node root = path.empty() ? YAML::Node(YAML::NodeType::Map) : config::load_yaml_file(path);
  for (const auto& assignment : overrides) config::apply_override(root, assignment, source);
  JobConfig config;
  config::read_config(root, source, config);
  check_ranges(config, config::RangeChecks(root, source));
  return config;
}

std::string to_yaml(const JobConfig& config) { return config::write_config(config); }

}  // namespace tessera
