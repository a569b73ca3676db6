// One optimizer step of data-parallel training: this rank's micro-batches of the global batch
// forward and backward through the ZeRO store, then the sharded AdamW step. The loss and the
// gradients are normalised by the target tokens of the whole global batch, so the result does not
// depend on the world size or on how the batch is cut into micro-batches. A micro-batch without
// targets adds nothing; a global batch without any is skipped on every rank (targets 0).
#pragma once

#include <vector>

#include "comm/communicator.h"
#include "model/token_batch.h"
#include "model/transformer.h"
#include "zero/zero_store.h"

namespace tessera {

struct StepStats {
  double loss = 0;       // mean over the global batch's targets
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // non-finite gradients, or no targets in the global batch: no update
  int64_t targets = 0;   // target tokens in the global batch
  double optimizer_seconds = 0;  // the sharded optimizer step's host time, less its waits on collectives
  // Where the step's time went, on the device (CUDA timing events on the compute stream; wall time
  // on the CPU): the micro-batches' forward and backward, then what follows the last backward until
  // the step is done (the gradient reductions landing, the norm and clip, AdamW, re-gathers). With
  // zero.overlap_step the AdamW runs on its own stream into the next step's forward, which is then
  // where it shows.
  double forward_backward_seconds = 0;
  double update_seconds = 0;
  // The part of update_seconds until the gradient norm is read (the reductions landing, the norm):
  // the rest is the AdamW pass and any re-gathers.
  double norm_seconds = 0;
  // zero.overlap_step on a GPU: the device span of the previous step's AdamW on its own stream,
  // beside this step's forward (0 otherwise, and at the first step).
  double behind_seconds = 0;
};

// host_comm: an MPI communicator over the same ranks, for the scalars (loss, token counts).
// `source`, when given, hands the model its parameters in the store's place (QAT's QatSource,
// which wraps the store).
StepStats train_step(ZeroStore& store, Communicator& host_comm, const std::vector<TokenBatch>& micro_batches,
                     const ops::AdamWStep& adam, double clip_norm, RecomputePlan recompute,
                     const PassDropout& lora_dropout = {}, ParamSource* source = nullptr);

}  // namespace tessera
