// The ZeRO parameter store: every rank holds 1/W of each unit's fp32 master weights, Adam moments
// and gradient accumulator, plus its slice of the compute-dtype working copy. It is the model's
// ParamSource:
//   stage 3  acquire() all-gathers a unit's working copy, release() frees it;
//   stage 2  the working copy stays whole on every rank (re-gathered after each step);
//   stage 1  as 2, and gradients are all-reduced whole at the step instead of reduce-scattered;
//   stage 0  nothing is sharded: every rank keeps and updates everything (plain data parallel).
// Gradients of a unit are reduce-scattered into the owners' fp32 shards as soon as its backward is
// done (stages 2-3) and the whole-unit buffer freed; the reduction runs while the next unit's
// backward computes (on GPUs the host never waits for it). The first micro-batch of a step writes
// the shard's gradient directly where the optimizer state keeps it on the device, later ones add
// to it; unsharded gradients (one rank, stage 0) accumulate in place with no copy at all. At stage
// 3 the store records the order in
// which the first step acquires units and from then on starts the all-gathers of the next
// `prefetch` units as each one is acquired, so they overlap the compute in between, and the read
// of the unit after them from a swap file (parameter offload) is already under way (every rank
// makes the same decisions, so collectives stay in the same order everywhere). The optimizer step clips by the global norm
// and skips (and counts) a step whose gradients are not finite. Where the fp32 state lives and how
// it is stepped is the OptimizerState's business; where the working copy lives, the WorkingCopy's.
// Frozen parameters (a LoRA job's base) are the working copy only: one byte buffer per unit,
// sharded and gathered on demand at stage 3 (whole on every rank below it), never reduced, with no
// fp32 state. A frozen projection weight with ParamSpec.quant (QLoRA) is quantized as it is loaded
// and kept, sharded and gathered as its packed bytes; the views hand it out as Linear::packed.
// With embed_on_host, a frozen embedding stays whole in pinned host memory on every rank and its
// view is a host tensor (the model gathers the batch's rows there).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/stream.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/param_source.h"
#include "offload/swap_file.h"
#include "zero/optimizer_state.h"
#include "zero/units.h"
#include "zero/working_copy.h"

namespace tessera {

enum class OffloadTo { none, cpu, nvme };

struct ZeroOptions {
  int stage = 3;
  int prefetch = 1;                   // stage 3: units gathered ahead, in the order of the first step
  DType compute_dtype = DType::BF16;  // the working copy's dtype (f32 for fp32 training)
  Device device;                      // where the working copy lives (and, without offload, all state)
  // ZeRO-Offload / ZeRO-Infinity: fp32 master weights and Adam moments in pinned host memory (cpu)
  // or a swap file (nvme), updated by the CPU AdamW; gradient shards in pinned host memory, or
  // (offload_grads_on_device) on `device`.
  OffloadTo offload_optimizer = OffloadTo::none;
  bool offload_grads_on_device = false;
  // Stage 3: each unit's working-copy shard in pinned host memory (cpu) or a swap file (nvme),
  // copied to `device` just before its all-gather.
  OffloadTo offload_params = OffloadTo::none;
  offload::NvmeSwap nvme_optimizer{}, nvme_params{};  // folders and I/O settings for nvme
  // Parameters with fewer elements (norm weights, biases) stay whole on every rank: never gathered,
  // their gradients all-reduced in one collective per step, updated identically everywhere.
  int64_t persist_below = 0;
  // Gradient reduce-scatters wait until the finished units' whole gradients add up to this many
  // bytes and then start together (one NCCL launch): small units coalesce, large ones go alone.
  int64_t reduce_bucket_bytes = 64 << 20;
  // The scale of the LoRA products (alpha / r), carried by every adapted projection it hands out.
  float lora_scale = 1.0f;
  // How projections with a packed base (ParamSpec.quant) multiply.
  PackedMatmul packed_matmul = PackedMatmul::dequantize;
  // A frozen embed_tokens (with no trainable tensor in its unit) kept whole in pinned host memory on
  // every rank: acquire(embed) hands out a host view, the model sends only the batch's rows over.
  bool embed_on_host = false;
  // zero.overlap_step: the AdamW pass of step() runs on its own stream, overlapping what the host
  // and the compute stream do next (the next step's forward); each unit's first use after the step
  // waits for that unit's update only. Applies with the optimizer state and the working copy on the
  // device (no offload); elsewhere step() stays sequential.
  bool overlap_step = false;
  // With overlap_step on one rank: each unit's squared gradient norm is taken on the optimizer stream
  // as soon as the step's last backward is done with the unit (final_backward), beside the backward
  // of the units before it, instead of after the whole backward. Off: the norm waits for the step.
  bool early_norm = true;
};

struct StepResult {
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // non-finite gradients: no update
};

class ZeroStore : public ParamSource {
 public:
  // `params`: model_parameters(config), with any adapters after it. Frozen ones are sharded and
  // gathered like the others (in the compute dtype) but get no fp32 state, no gradient and no
  // reduction: at stages 0-2 they are kept whole on every rank.
  ZeroStore(const ModelConfig& config, std::vector<ParamSpec> params, const ZeroOptions& options, Communicator& comm);
  // Every parameter of the model, trainable.
  ZeroStore(const ModelConfig& config, const ZeroOptions& options, Communicator& comm);
  ~ZeroStore() override;

  // A parameter's values for load(): a whole tensor (any floating dtype; on the host, e.g. a
  // view of a memory-mapped file, of which each rank reads only the slices it owns), or undefined
  // to initialise it by its rule.
  using ParamValues = std::function<Tensor(const ParamSpec& param)>;
  // Every parameter from `values` or by its rule (ParamSpec.init; `std` for the normal ones):
  // element i of the model's parameter list uses Philox counter i with `seed`, so the result does
  // not depend on the world size. Trainable ones become master weights, frozen ones working copy.
  void load(const ParamValues& values, uint64_t seed, float std);
  // Every parameter initialised by its rule.
  void init_random(uint64_t seed, float std);
  // The parameters the checkpoint holds from it; the others (adapters) by their rules.
  void load(const SafetensorsModel& checkpoint, uint64_t seed = 0, float std = 0.02f);

  const ModelParams& acquire(UnitId unit) override;
  void release(UnitId unit) override;
  ModelParams& grads(UnitId unit) override;
  void grads_done(UnitId unit) override;

  // One AdamW step (hyper-parameters in `adam`, its grad_scale ignored) with global-norm clipping
  // (clip_norm 0: off), then fresh working copies and zeroed gradients. `norm_known`, when given,
  // is called once the gradient norm is read, before the updates are queued (a timing mark).
  StepResult step(const ops::AdamWStep& adam, double clip_norm, const std::function<void()>& norm_known = {});
  // zero.overlap_step on a GPU: device seconds of the last updates queued behind (from their start
  // on the optimizer stream to their end, beside whatever ran then), once; waits for them. 0
  // otherwise, and when no updates were queued behind since the last call.
  double take_behind_seconds();
  // The coming pass is the step's last backward: a unit's gradient is final at its grads_done
  // (where nothing is reduced after it: one rank), so its norm may be taken then (early_norm).
  void final_backward() { final_backward_ = true; }

  // This rank's slices of the fp32 state, for checkpoints: elements [begin, end) of a parameter's
  // flattened tensor (master, m and v hold end - begin elements, on the host or the device). They
  // come one unit at a time, so that state kept on disk streams through bounded buffers. With
  // `unique` (for writing), where nothing is sharded (stage 0, persistent parameters) only rank 0
  // reports them, so each element has exactly one writer. write_state keeps what fn leaves in them.
  struct StateSlice {
    const UnitParam* param;
    int64_t begin, end;
    Tensor master, m, v;
  };
  using SliceVisitor = std::function<void(const StateSlice&)>;
  void read_state(bool unique, const SliceVisitor& fn);
  void write_state(const SliceVisitor& fn);
  // Rebuilds the working copies from the master weights (after they were loaded).
  void refresh_working_copy();

  int64_t num_params() const;        // every parameter's elements, frozen ones included
  int64_t trainable_params() const;  // the elements with fp32 state and gradients
  // The trainable parameters: what a checkpoint holds state of.
  const std::vector<ParamSpec>& trainable_specs() const { return trainable_; }
  const ModelConfig& config() const { return config_; }
  Device device() const { return options_.device; }  // the training device
  bool overlaps_step() const { return overlap_; }      // zero.overlap_step is in effect

 private:
  struct Unit;
  Unit& unit(UnitId id);
  bool embed_on_host(const UnitLayout& layout) const;  // options_.embed_on_host, for the embedding unit
  // Views of u's parameters: its own in `flat`, its persistent ones in `persistent_flat`, its
  // frozen ones (for the working copy) in `frozen_full`.
  void bind(Unit& u, const Tensor& flat, const Tensor& persistent_flat, const Tensor& frozen_full, ModelParams& views);
  const Tensor& grad_buffer(Unit& u);  // u.full_grad, made and zeroed on first use in a step
  void gather(Unit& u);
  void start_gather(Unit& u);      // queues the all-gathers (trainable and frozen) without waiting
  void finish_gather(Unit& u);     // waits for them and binds the views
  void load_frozen(Unit& u, const ParamValues& values, uint64_t seed, float std);  // this rank's bytes
  // Starts the gathers of the next `prefetch` units, and the home's read of the one after them.
  void prefetch_after(size_t unit_position);
  // Gradient reductions: a sharded unit's reduce-scatter waits in the bucket until the bucket holds
  // reduce_bucket_bytes, then the bucket's units start together; an unsharded unit's all-reduce
  // starts at once (at the step). Both drop u.full_grad; land() finishes them: waits (the compute
  // stream only, on GPUs), then hands the optimizer state what it did not get written directly.
  void enqueue_reduce(Unit& u);
  void flush_bucket();
  void reduce_whole(Unit& u);
  void started_reduce(Unit& u);
  void land(Unit& u);
  template <typename Fn>
  void visit_state(bool write, Fn&& fn);  // fn(unit, slice) for every state slice this rank owns
  // zero.overlap_step: u's update of the last step is done before what is queued next on the
  // current stream (on the CPU, where nothing runs behind the host, it is made now); all units'.
  void await_step(Unit& u);
  void await_steps();
  void step_behind(const ops::AdamWStep& clipped);  // step()'s AdamW with zero.overlap_step
  ops::AdamWStep update_of(const Unit& u, const ops::AdamWStep& clipped) const;  // ... its settings for u
  void take_norm(Unit& u);                           // early_norm: u's squared norm, now

  ModelConfig config_;
  std::vector<ParamSpec> trainable_;
  ZeroOptions options_;
  Communicator& comm_;
  std::vector<std::unique_ptr<Unit>> units_;  // model_units(), then the persistent group if any
  Unit* persistent_ = nullptr;                 // that group: whole on every rank (persist_below)
  std::unique_ptr<OptimizerState> state_;
  std::unique_ptr<WorkingCopy> low_;
  // Stage 3 prefetch: the units in the order the first step acquired them, and where we are in it.
  std::vector<size_t> order_;
  bool recording_ = true;
  size_t cursor_ = 0;
  std::vector<Unit*> bucket_, in_flight_;  // reductions waiting to start; the last ones started
  int64_t bucket_bytes_ = 0;
  // zero.overlap_step in effect: the stream step() queues AdamW on (GPUs), the step's settings for
  // the units whose update is still to be made (CPU).
  bool overlap_ = false;
  Stream optimizer_stream_ = nullptr;
  Event behind_start_{true}, behind_end_{true};  // around the last updates queued behind
  bool behind_timed_ = false;
  ops::AdamWStep pending_adam_{};
  bool final_backward_ = false;  // final_backward() was called for this step
  bool norms_queued_ = false;    // early norms queued on the optimizer stream in this step
};

}  // namespace tessera
