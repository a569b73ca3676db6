// Recompute::norms_swiglu (in every layer, and in the first layer only) and Recompute::layers
// against keeping every activation, on each tiny
// Hugging Face model of tests/data/hf (GQA, rope scalings, Qwen2 biases, Qwen3 q/k norms), in fp32
// and bf16: the same loss and gradients. The recomputed tensors are made by the same kernels from
// the same inputs, so they differ from the kept ones by no more than two passes that keep
// everything differ from each other (nothing on the CPU; on a GPU, what atomics reorder). On the
// CPU the pass's peak memory must drop by at least half of what is not kept.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/memory.h"
#include "core/stream.h"
#include "model_parity.h"

namespace tessera::testing_util {

struct PassResult {
  double loss = 0;
  ModelParams grads;
  double peak = 0;  // bytes allocated at the pass's high-water mark, beyond what it started with
};

inline PassResult run_pass(const LoadedModel& model, const TokenBatch& batch, RecomputePlan recompute, Device device) {
  PassResult r{0, make_params(model.config, DType::F32, device, true)};
  WholeParams source(model.params, &r.grads);
  synchronize_device(device);
  reset_peak_memory(device);
  const double before = static_cast<double>(memory_stats(device).allocated);
  r.loss = run_model(model.config, source, batch, {.backward = true, .recompute = recompute}).loss;
  synchronize_device(device);
  r.peak = static_cast<double>(memory_stats(device).peak_allocated) - before;
  return r;
}

inline void check_recompute_is_exact(Device device) {
  const double slack = device.is_cpu() ? 0.0 : 1e-6;  // fp32 noise of reordered atomics
  for (const std::string& folder : hf_reference_models()) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(folder + " " + std::string(dtype_name(dtype)));
      const LoadedModel model = load_hf_model(folder, dtype, device);
      const SafetensorsFile inputs = SafetensorsFile::open(folder + "/inputs.safetensors");
      const TokenBatch batch = TokenBatch::causal_lm(inputs.tensor("input_ids"), device);
      PassResult kept = run_pass(model, batch, Recompute::none, device);
      PassResult kept_again = run_pass(model, batch, Recompute::none, device);
      EXPECT_GT(kept.loss, 0.0);
      const ModelConfig& c = model.config;
      for (RecomputePlan recompute : {RecomputePlan(Recompute::norms_swiglu), RecomputePlan(Recompute::norms_swiglu, 1),
                                      RecomputePlan(Recompute::layers)}) {
        SCOPED_TRACE("recompute kind " + std::to_string(int(recompute.kind)) + ", layers " + std::to_string(recompute.layers));
        // What norms_swiglu does not keep: two hidden-sized rows and an intermediate-sized one per
        // token in each of its layers but the one being recomputed (layers: at least as much).
        const int64_t lean = recompute.layers == 0 ? c.num_hidden_layers : std::min(recompute.layers, c.num_hidden_layers);
        const double dropped = static_cast<double>(batch.tokens() * (lean - 1) *
                                                   (2 * c.hidden_size + c.intermediate_size) * dtype_size(dtype));
        PassResult again = run_pass(model, batch, recompute, device);
        // Counted exactly on the CPU; on a GPU the allocator rounds these tiny tensors up to 512 B
        // blocks, which hides savings of this size.
        if (device.is_cpu()) EXPECT_LE(again.peak, kept.peak - dropped / 2) << "peak bytes, kept " << kept.peak;
        EXPECT_LE(std::abs(again.loss - kept.loss), 2 * std::abs(kept_again.loss - kept.loss) + slack * kept.loss);
        double norm_sq = 0;
        for_each_param(model.config, again.grads, [&](const std::string& name, Tensor& g) {
          const Tensor& want = param_slot(kept.grads, name);
          const double noise = relative_error(param_slot(kept_again.grads, name), want);
          EXPECT_LE(relative_error(g, want), 2 * noise + slack) << name;
          norm_sq += squared_norm(want);
        });
        EXPECT_GT(norm_sq, 0.0);
      }
    }
  }
}

}  // namespace tessera::testing_util
