#include "engine/memory_estimate.h"

#include <algorithm>

#include "zero/units.h"

namespace tessera {

std::vector<MemoryEstimate> estimate_memory(const ModelConfig& c, const JobConfig& job, int ranks) {
  double n = 0, largest_unit = 0;
  for (const UnitLayout& u : model_units(c)) {
    n += static_cast<double>(u.numel);
    largest_unit = std::max(largest_unit, static_cast<double>(u.numel));
  }
  const double w = ranks, low = job.train.dtype == "bf16" ? 2 : 4;
  // Saved per token and layer (layer_forward): x, h, q, k, v, attention out, x_mid, h_post
  // (hidden-sized and head-sized rows) and gate, up, act (intermediate-sized), plus f32 stats.
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double per_token_layer = low * (5.0 * c.hidden_size + 2 * q + 2 * kv + 3.0 * c.intermediate_size) + 4 * 4;
  const double tokens = static_cast<double>(job.train.micro_batch_size * job.data.seq_len);
  const double saved = job.train.activation_checkpointing
                           ? tokens * (c.num_hidden_layers * low * c.hidden_size + per_token_layer)
                           : tokens * c.num_hidden_layers * per_token_layer;
  // The loss works on 1024-token chunks of f32 logits.
  const double activations = saved + 1024.0 * c.vocab_size * 4 * 2;
  const std::string& optimizer = job.zero.offload_optimizer.device;
  const bool grads_on_device = job.zero.offload_optimizer.gradients == "device";
  const double pinned_swap = static_cast<double>(job.zero.offload_optimizer.pinned_buffer_mb) * 1048576;
  std::vector<MemoryEstimate> out;
  for (int stage = 0; stage <= 3; ++stage) {
    MemoryEstimate e;
    e.stage = stage;
    const double shard = stage >= 1 ? 1.0 / w : 1.0;
    const double unit_shard = largest_unit * shard;  // the largest unit's shard, in elements
    e.working = stage == 3 ? low * n / w : low * n;
    e.master = 4 * n * shard;
    e.moments = 8 * n * shard;
    e.gradients = stage >= 2 ? 4 * n / w + 4 * largest_unit : 4 * n;  // + one unit's whole gradient
    e.gathered = stage == 3 ? low * largest_unit * (2 + job.zero.prefetch) : 0;
    e.activations = activations;
    if (optimizer != "none") {
      // Master weights and moments leave the device; the CPU AdamW writes each unit's working copy
      // into one of two staging buffers on its way up (unless it lives on the host).
      (optimizer == "nvme" ? e.disk : e.host) += e.master + e.moments;
      if (optimizer == "nvme") e.host += pinned_swap;
      e.master = e.moments = 0;
      if (job.zero.offload_params.device == "none" || stage < 3) e.host += 2 * low * unit_shard;
      const double grad_shards = 4 * n * shard;
      if (grads_on_device) {
        e.host += 2 * 4 * unit_shard;  // two buffers carry the shards down at the step
      } else {
        e.host += grad_shards + 2 * 4 * unit_shard;  // accumulators + two staging buffers
        if (stage >= 2) e.gradients -= grad_shards;
      }
    }
    const std::string& params = job.zero.offload_params.device;
    if (params != "none" && stage == 3) {
      // The device holds only gathered units (and each one's shard on its way in).
      (params == "nvme" ? e.disk : e.host) += e.working;
      if (params == "nvme") e.host += 4 * low * unit_shard;  // two staging buffers each way
      e.gathered += low * unit_shard * (2 + job.zero.prefetch);
      e.working = 0;
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace tessera
