// The job config: every section and key a `tessera` job reads, with defaults and checks.
// YAML files name only what differs from the defaults here; README.md documents each key.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/config/config_io.h"
#include "engine/qat.h"
#include "io/data/data_options.h"
#include "lora/adapter.h"

namespace tessera {

struct ModelSection {
  std::string path;       // Hugging Face model folder
  YAML::Node init;        // or: config.json keys of a model initialised from train.seed
  std::string tokenizer;  // tokenizer.json path or folder, or "bytes"; default: model.path
};

using DataSection = data::DataOptions;

struct ScheduleSection {
  std::string type = "cosine";  // constant | linear | cosine
  int64_t warmup_steps = 0;
  double min_lr = 0.0;
  // Resuming a checkpoint whose schedule spanned another train.steps is refused unless this is
  // set (the lr then follows the new horizon from the checkpoint's step on).
  bool allow_new_horizon = false;
};

struct TrainSection {
  int64_t steps = 100;            // the lr schedule's horizon
  int64_t stop_after = 0;         // stop (and save) after this step, schedule unchanged; 0: off
  int64_t micro_batch_size = 1;
  int64_t grad_accum = 1;
  double lr = 3e-4;
  ScheduleSection schedule;
  double weight_decay = 0.0;
  std::vector<double> betas{0.9, 0.95};
  double eps = 1e-8;
  double clip_grad_norm = 1.0;  // 0 turns clipping off
  int64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda
  std::string dtype = "bf16";   // bf16 | fp32
  bool activation_checkpointing = false;
  bool recompute_norms_swiglu = false;  // backward recomputes the norms' and SwiGLU's outputs (Recompute)
  int64_t recompute_norms_swiglu_layers = 0;  // ... in the first N layers only (0: all; RecomputePlan)
  double collective_timeout_s = 600;  // a step that makes no progress this long takes the job down; 0: off
};

struct OffloadSection {
  std::string device = "none";  // none | cpu | nvme
  std::string path;             // folder for nvme
  // nvme only:
  int64_t pinned_buffer_mb = 256;  // pinned staging memory per rank (the only host memory swapping uses)
  int64_t io_block_kb = 1024;      // one read or write request
  int64_t io_queue_depth = 8;      // requests in flight
  int64_t units_in_flight = 2;     // units being read or written at once
};

struct OptimizerOffloadSection : OffloadSection {
  std::string gradients = "host";  // host | device: where the fp32 gradient shards accumulate
};

struct ZeroSection {
  int64_t stage = 3;              // 0 replicated, 1 optimizer, 2 + gradients, 3 + parameters sharded
  int64_t prefetch = 1;           // units gathered ahead
  double reduce_bucket_mb = 64;
  int64_t persist_below = 0;      // parameters with fewer elements stay whole on every rank
  bool overlap_step = false;      // AdamW on its own stream, overlapping the next step's forward
  OptimizerOffloadSection offload_optimizer;
  OffloadSection offload_params;
};

struct CheckpointSection {
  std::string dir;
  int64_t every_steps = 0;  // 0: only at the end
  int64_t keep_last = 0;    // 0: keep all
  std::string resume = "auto";  // auto | never | a checkpoint path
  bool overwrite = false;       // starting from step 0 where checkpoints are: delete them
};

struct LogSection {
  int64_t every_steps = 1;
  std::string metrics_file;
  int64_t metrics_port = 0;               // rank 0 serves GET /metrics and /health there; 0: off
  std::string metrics_host = "127.0.0.1";  // the address it binds (0.0.0.0: every interface)
};

struct EvalSection {
  int64_t every_steps = 0;
  int64_t batches = 1;
};

using LoraSection = lora::LoraOptions;

struct QuantSection {
  std::optional<QatOptions> qat;  // present: quantization-aware training
};

struct JobConfig {
  ModelSection model;
  DataSection data;
  TrainSection train;
  ZeroSection zero;
  CheckpointSection checkpoint;
  LogSection log;
  EvalSection eval;
  std::optional<LoraSection> lora;  // present: train LoRA adapters on a frozen base
  QuantSection quant;
};

template <typename V> void describe(V& v, ModelSection& s) {
  v("path", s.path);
  v("init", s.init);
  v("tokenizer", s.tokenizer);
}
}  // namespace tessera

namespace tessera::data {
// Found by argument-dependent lookup: DataSection is io's DataOptions.
template <typename V> void describe(V& v, DataOptions& s) {
  v("train", s.train);
  v("eval", s.eval);
  v("format", s.format, {"auto", "text", "completion", "chat"});
  v("seq_len", s.seq_len);
  v("chat_template", s.chat_template);
  v("skip_bad_lines", s.skip_bad_lines);
}
}  // namespace tessera::data

namespace tessera {

template <typename V> void describe(V& v, ScheduleSection& s) {
  v("type", s.type, {"constant", "linear", "cosine"});
  v("warmup_steps", s.warmup_steps);
  v("min_lr", s.min_lr);
  v("allow_new_horizon", s.allow_new_horizon);
}
template <typename V> void describe(V& v, TrainSection& s) {
  v("steps", s.steps);
  v("stop_after", s.stop_after);
  v("micro_batch_size", s.micro_batch_size);
  v("grad_accum", s.grad_accum);
  v("lr", s.lr);
  v("schedule", s.schedule);
  v("weight_decay", s.weight_decay);
  v("betas", s.betas);
  v("eps", s.eps);
  v("clip_grad_norm", s.clip_grad_norm);
  v("seed", s.seed);
  v("device", s.device, {"auto", "cpu", "cuda"});
  v("dtype", s.dtype, {"bf16", "fp32"});
  v("activation_checkpointing", s.activation_checkpointing);
  v("recompute_norms_swiglu", s.recompute_norms_swiglu);
  v("recompute_norms_swiglu_layers", s.recompute_norms_swiglu_layers);
  v("collective_timeout_s", s.collective_timeout_s);
}
template <typename V> void describe(V& v, OffloadSection& s) {
  v("device", s.device, {"none", "cpu", "nvme"});
  v("path", s.path);
  v("pinned_buffer_mb", s.pinned_buffer_mb);
  v("io_block_kb", s.io_block_kb);
  v("io_queue_depth", s.io_queue_depth);
  v("units_in_flight", s.units_in_flight);
}
template <typename V> void describe(V& v, OptimizerOffloadSection& s) {
  describe(v, static_cast<OffloadSection&>(s));
  v("gradients", s.gradients, {"host", "device"});
}
template <typename V> void describe(V& v, ZeroSection& s) {
  v("stage", s.stage);
  v("prefetch", s.prefetch);
  v("reduce_bucket_mb", s.reduce_bucket_mb);
  v("persist_below", s.persist_below);
  v("overlap_step", s.overlap_step);
  v("offload_optimizer", s.offload_optimizer);
  v("offload_params", s.offload_params);
}
template <typename V> void describe(V& v, CheckpointSection& s) {
  v("dir", s.dir);
  v("every_steps", s.every_steps);
  v("keep_last", s.keep_last);
  v("resume", s.resume);
  v("overwrite", s.overwrite);
}
template <typename V> void describe(V& v, LogSection& s) {
  v("every_steps", s.every_steps);
  v("metrics_file", s.metrics_file);
  v("metrics_port", s.metrics_port);
  v("metrics_host", s.metrics_host);
}
template <typename V> void describe(V& v, EvalSection& s) {
  v("every_steps", s.every_steps);
  v("batches", s.batches);
}
}  // namespace tessera

namespace tessera::lora {
// Found by argument-dependent lookup: LoraSection is lora's LoraOptions.
template <typename V> void describe(V& v, LoraOptions& s) {
  v("r", s.r);
  v("alpha", s.alpha);
  v("dropout", s.dropout);
  v("target_modules", s.target_modules);
  v("use_rslora", s.use_rslora);
  v("init", s.init, {"peft", "gaussian"});
  v("layers", s.layers);
  v("modules_to_save", s.modules_to_save);
  v("adapter", s.adapter);
  v("base_quant", s.base_quant, {"none", "nf4", "int8"});
  v("packed_matmul", s.packed_matmul, {"dequantize", "gemm_packed"});
  v("frozen_embedding", s.frozen_embedding, {"device", "host"});
}
}  // namespace tessera::lora

namespace tessera {

template <typename V> void describe(V& v, QatOptions& s) {
  v("weights", s.weights, {"int8", "int4", "q8_0", "q4_0"});
  v("group_size", s.group_size);
  v("symmetric", s.symmetric);
  v("activations", s.activations, {"none", "int8"});
  v("start_step", s.start_step);
  v("modules", s.modules);
  v("learnable_scales", s.learnable_scales);
}
template <typename V> void describe(V& v, QuantSection& s) { v("qat", s.qat); }

template <typename V> void describe(V& v, JobConfig& c) {
  v("model", c.model);
  v("data", c.data);
  v("train", c.train);
  v("zero", c.zero);
  v("checkpoint", c.checkpoint);
  v("log", c.log);
  v("eval", c.eval);
  v("lora", c.lora);
  v("quant", c.quant);
}

// Reads `path` (may be "" for all defaults), applies the `--set key=value` overrides, checks
// types and value ranges. Every error is one line naming the file (or --set) and the key.
JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The resolved config as YAML (what `tessera config` prints and checkpoints keep).
std::string to_yaml(const JobConfig& config);

}  // namespace tessera
