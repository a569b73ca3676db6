#include "engine/memory_estimate.h"

#include <algorithm>

#include "engine/job_params.h"
#include "zero/units.h"

namespace tessera {

namespace {

// The model as the ZeRO store lays it out: trainable elements, `persistent` ones
// (zero.persist_below) whole on every rank, the rest in units split over the ranks, the largest
// holding `largest`; frozen ones (a LoRA base) as bytes of their units' frozen buffers (a packed
// QLoRA base as its packed bytes); the unit gathered with most bytes (its working copy and frozen
// bytes).
struct ParamCounts {
  double sharded = 0, persistent = 0, largest = 0;
  double frozen = 0;             // bytes
  double frozen_on_host = 0;     // bytes: a frozen embedding kept in pinned host memory
  double largest_gathered = 0;   // bytes
  double largest_packed = 0;     // elements of the largest packed base weight (QLoRA)
};

ParamCounts count_params(const ModelConfig& c, const JobConfig& job, double low) {
  const DType dtype = job.train.dtype == "bf16" ? DType::BF16 : DType::F32;
  const JobParams params = job_params(job, c);
  std::vector<UnitLayout> units = model_units(c, params.params, dtype);
  ParamCounts out;
  out.persistent = static_cast<double>(split_persistent(units, job.zero.persist_below).numel);
  for (const UnitLayout& u : units) {
    if (params.adapter && params.adapter->embed_on_host && u.id == UnitId::embed()) {
      out.frozen_on_host += static_cast<double>(u.frozen_bytes);  // whole on every rank, never gathered
      continue;
    }
    out.sharded += static_cast<double>(u.numel);
    out.largest = std::max(out.largest, static_cast<double>(u.numel));
    out.frozen += static_cast<double>(u.frozen_bytes);
    out.largest_gathered = std::max(out.largest_gathered, low * u.numel + static_cast<double>(u.frozen_bytes));
    for (const UnitParam& p : u.frozen)
      if (p.quant) out.largest_packed = std::max(out.largest_packed, static_cast<double>(p.numel()));
  }
  return out;
}

// What one micro-batch keeps for backward, plus the loss's chunk of logits.
double activation_bytes(const ModelConfig& c, const JobConfig& job, double low) {
  // Saved per token and layer (layer_forward): x, h, q, k, v, attention out, x_mid, h_post
  // (hidden-sized and head-sized rows) and gate, up, act (intermediate-sized), plus f32 stats.
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  // LoRA keeps each adapted projection's x A^T (r values) too.
  const double lora = job.lora ? 7.0 * job.lora->r : 0.0;
  const double per_token_layer = low * (5.0 * c.hidden_size + 2 * q + 2 * kv + 3.0 * c.intermediate_size + lora) + 4 * 4;
  // train.recompute_norms_swiglu: h, h_post and act are not kept (in the first
  // recompute_norms_swiglu_layers layers, or all); one layer's are made again in its backward.
  const double recomputed = low * (2.0 * c.hidden_size + c.intermediate_size);
  const int64_t limit = job.train.recompute_norms_swiglu_layers;
  const double lean_layers = !job.train.recompute_norms_swiglu ? 0
                             : static_cast<double>(limit == 0 ? c.num_hidden_layers : std::min(limit, c.num_hidden_layers));
  const double tokens = static_cast<double>(job.train.micro_batch_size * job.data.seq_len);
  const double saved = job.train.activation_checkpointing ? tokens * (c.num_hidden_layers * low * c.hidden_size + per_token_layer)
                       : tokens * (c.num_hidden_layers * per_token_layer - lean_layers * recomputed +
                                   (lean_layers > 0 ? recomputed : 0));
  // The loss works on chunks of 1024 tokens' f32 logits, and their gradient rounded to the compute
  // dtype (when that is not f32).
  const double chunk = std::min(1024.0, tokens);
  return saved + chunk * c.vocab_size * (4 + (low < 4 ? low : 0));
}

double mib(int64_t megabytes) { return static_cast<double>(megabytes) * 1048576; }

}  // namespace

std::vector<MemoryEstimate> estimate_memory(const ModelConfig& c, const JobConfig& job, int ranks) {
  const double w = ranks, low = job.train.dtype == "bf16" ? 2 : 4;
  const ParamCounts k = count_params(c, job, low);
  const double n = k.sharded + k.persistent, p = k.persistent;
  // A packed base is dequantized into a compute-dtype workspace, one projection at a time.
  const double activations = activation_bytes(c, job, low) + low * k.largest_packed;
  const std::string& optimizer = job.zero.offload_optimizer.device;
  const std::string& params = job.zero.offload_params.device;
  const bool grads_on_device = job.zero.offload_optimizer.gradients == "device";
  std::vector<MemoryEstimate> out;
  for (int stage = 0; stage <= 3; ++stage) {
    MemoryEstimate e;
    e.stage = stage;
    const bool split = stage >= 1 && ranks > 1;     // units are really divided (one rank keeps them whole)
    const double shard = split ? 1.0 / w : 1.0;
    const double owned = k.sharded * shard + p;      // elements of fp32 state (and working-copy slices) here
    const double staged = std::max(k.largest * shard, p);  // the largest slice staged at once
    // This rank's working-copy slices; stages 1-2 also keep the whole units gathered from them,
    // stage 3 gathers a unit when it is used (it, `prefetch` ahead, and one being released).
    // Frozen bytes are split at stage 3 only: below it every rank keeps them whole.
    const double frozen = split && stage == 3 ? k.frozen / w : k.frozen;
    e.working = low * owned + (split && stage < 3 ? low * k.sharded : 0) + frozen;
    e.gathered = split && stage == 3 ? k.largest_gathered * (2 + job.zero.prefetch) : 0;
    e.master = 4 * owned;
    e.moments = 8 * owned;
    // Whole gradients: every unit's until the step (stages 0-1, or nothing split), else one unit's
    // in flight and the kept tensors'. Where units are split, the shards accumulate beside them.
    const double whole = split && stage >= 2 ? 4 * (k.largest + p) : 4 * n;
    e.gradients = whole + (split ? 4 * k.sharded * shard : 0);
    e.activations = activations;
    // A frozen embedding on the host: the table, and the batch's rows gathered in pinned memory.
    if (k.frozen_on_host > 0)
      e.host += k.frozen_on_host + low * c.hidden_size * static_cast<double>(job.train.micro_batch_size * job.data.seq_len);
    if (optimizer != "none") {
      // Master weights and moments leave the device for pinned memory or a swap file streamed
      // through the optimizer's pool; the CPU AdamW writes each unit's working copy into one of two
      // staging buffers on its way up (unless it lives on the host or the disk).
      (optimizer == "nvme" ? e.disk : e.host) += e.master + e.moments;
      if (optimizer == "nvme") e.host += mib(job.zero.offload_optimizer.pinned_buffer_mb);
      e.master = e.moments = 0;
      if (params == "none" || stage < 3) e.host += 2 * std::max(low * staged, k.largest_gathered / (split ? w : 1));
      // The gradient accumulators (every unit's, the kept tensors' too) in pinned memory, or on the
      // device: beside the whole gradients where units are split, as them where not. Two buffers
      // carry them between the two.
      e.gradients = whole + (grads_on_device && split ? 4 * owned : 0);
      e.host += (grads_on_device ? 0 : 4 * owned) + 2 * 4 * staged;
    }
    if (params != "none" && stage == 3) {
      // The slices leave the device; each gathered unit's shard (and the kept tensors) is copied
      // back just before use. On disk they stream through the parameters' own pool.
      (params == "nvme" ? e.disk : e.host) += e.working;
      if (params == "nvme") e.host += mib(job.zero.offload_params.pinned_buffer_mb);
      e.gathered += (k.largest_gathered * shard + low * p) * (2 + job.zero.prefetch);
      e.working = 0;
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace tessera
