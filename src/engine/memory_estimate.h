// Per-rank memory of a ZeRO job, before running it: model state by stage (bytes per parameter:
// 2 for the compute-dtype working copy, 4 fp32 master, 8 Adam moments, 4 fp32 gradients), the
// gathered units in flight, and activations (what each layer saves for backward). Parameters below
// zero.persist_below count whole on every rank, as the store keeps them. With offload, what leaves
// the device is counted as pinned host memory or disk (swap files), staging included. A QLoRA base
// (lora.base_quant) counts its packed bytes, plus one projection's dequantized workspace; a frozen
// embedding kept on the host (lora.frozen_embedding: host) counts as host memory, whole per rank.
#pragma once

#include <string>
#include <vector>

#include "engine/config/job_config.h"
#include "model/model_config.h"

namespace tessera {

struct MemoryEstimate {
  int stage = 3;
  double working = 0, master = 0, moments = 0, gradients = 0, gathered = 0, activations = 0;  // bytes
  double host = 0;  // pinned host memory (offload), not counted in total()
  double disk = 0;  // swap files (nvme offload), not counted in total()
  double total() const { return working + master + moments + gradients + gathered + activations; }
};

// One estimate per ZeRO stage 0..3 for `ranks` ranks, with the job's batch, dtype and offload.
std::vector<MemoryEstimate> estimate_memory(const ModelConfig& model, const JobConfig& job, int ranks);

}  // namespace tessera
