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
  std::vector<MemoryEstimate> out;
  for (int stage = 0; stage <= 3; ++stage) {
    MemoryEstimate e;
    e.stage = stage;
    const double shard = stage >= 1 ? 1.0 / w : 1.0;
    e.working = stage == 3 ? low * n / w : low * n;
    e.master = 4 * n * shard;
    e.moments = 8 * n * shard;
    e.gradients = stage >= 2 ? 4 * n / w + 4 * largest_unit : 4 * n;  // + one unit's whole gradient
    e.gathered = stage == 3 ? low * largest_unit * (2 + job.zero.prefetch) : 0;
    e.activations = activations;
    if (job.zero.offload_optimizer.device == "cpu") {
      // Master weights, moments and the gradient shards move to pinned host memory; the GPU keeps
      // the whole-unit gradient buffers of backward.
      const double grad_shards = stage >= 2 ? 4 * n / w : 4 * n * shard;
      e.host = e.master + e.moments + grad_shards;
      e.master = e.moments = 0;
      e.gradients -= grad_shards;
      if (stage < 2) e.gradients = 4 * n;
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace tessera
