// Where the fp32 optimizer state of this rank's unit shards lives and how it is stepped: master
// weights, Adam moments and the gradient accumulator.
//   device  everything on the training device, stepped by the device AdamW;
//   host    (zero.offload_optimizer: cpu or nvme) master weights and moments in pinned host memory
//           or in a swap file (an offload home), stepped by the CPU AdamW, which writes the working copy in
//           the same pass; gradient shards in pinned host memory or kept on the device.
// The store hands in reduced gradient shards as backward produces them and asks for the squared
// norm (for clipping) before the step.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "kernels/ops.h"
#include "offload/home.h"
#include "zero/units.h"
#include "zero/working_copy.h"

namespace tessera {

// What the optimizer state knows of a unit: the size of this rank's shard (padding included), the
// parameter ranges in it (for weight decay), and whether it is a shard at all (else whole on
// every rank, so its norm must not be summed over the ranks).
struct UnitShard {
  int64_t size = 0;
  std::vector<OwnedRange> ranges;
  bool sharded = true;
  int64_t owned() const { return ranges.empty() ? 0 : ranges.back().at + ranges.back().end - ranges.back().begin; }
};

// fp32 shards of one unit (master weights, Adam moments), or a piece of them.
struct UnitState {
  Tensor master, m, v;
};

// fn(unit, state, first): `state` holds shard positions [first, first + state.master.numel()) of
// `unit`; a unit's pieces come in order.
using StateVisitor = std::function<void(size_t unit, const UnitState& state, int64_t first)>;

class OptimizerState {
 public:
  virtual ~OptimizerState() = default;

  // Where the unit's reduced gradient may be written directly (the whole shard): the device
  // accumulator when it holds nothing of this step yet, which it then counts as written. Undefined
  // otherwise: hand the gradient to accumulate().
  virtual Tensor direct_grad(size_t unit) = 0;
  // Whether the accumulator direct_grad hands out next already holds zeros: the last update zeroed
  // it as it read it (AdamWStep.zero_grad), so this step's first gradient needs no fill.
  virtual bool grad_zeroed(size_t) const { return false; }
  // Adds a reduced f32 gradient shard of `unit` (on the training device, ready on the current stream).
  virtual void accumulate(size_t unit, const Tensor& shard) = 0;
  // Squared gradient norms on the training device, f32 [2]: [0] of the sharded units (this
  // rank's part), [1] of the unsharded ones.
  virtual Tensor grad_norm_sq() = 0;
  // AdamW on every unit (adam.grad_scale: the clipping coefficient), writing each unit's new working
  // copy through `low`; then the gradients start again from zero.
  virtual void step(const ops::AdamWStep& adam, WorkingCopy& low) = 0;
  // Whether units can be stepped one at a time, apart from the others (step_unit): the device state,
  // whose AdamW of a unit touches only that unit's state and working copy. The host state steps all
  // units in one pass streamed through its home and cannot.
  virtual bool steps_by_unit() const { return false; }
  // AdamW on `unit` alone, as step() does it; once every unit was stepped (in any order, at any
  // time before its state or gradient is next used), zero_grads() ends the step as step() would.
  virtual void step_unit(size_t unit, const ops::AdamWStep& adam, WorkingCopy& low);
  // The device state only: `unit`'s gradient is final for this step; its squared norm is taken now
  // (on the current stream) and grad_norm_sq() adds it in its place, with the same rounding as if
  // it were taken there.
  virtual void take_norm(size_t unit);
  // Drops the accumulated gradients (a skipped step).
  virtual void zero_grads() = 0;
  // Every unit's fp32 state in unit order (host or device tensors, in pieces where it streams from
  // disk); with `write`, what fn leaves in them is kept.
  virtual void visit(bool write, const StateVisitor& fn) = 0;
  // Rebuilds every unit's working copy from its master weights.
  virtual void refresh(WorkingCopy& low) = 0;
};

std::unique_ptr<OptimizerState> make_device_state(std::vector<UnitShard> units, Device device);
// `home` holds each unit's master weights and moments as three f32 parts (state_layout()).
std::unique_ptr<OptimizerState> make_host_state(std::vector<UnitShard> units, Device device, bool grads_on_device,
                                                std::unique_ptr<offload::Home> home);
offload::HomeLayout state_layout(const std::vector<UnitShard>& units);

// AdamW over the unit's parameter ranges (no weight decay on norms and biases) for tensors that
// cover shard positions [first, first + master.numel()); the working copy's padding is zeroed.
void adamw_ranges(const UnitShard& unit, int64_t first, const ops::AdamWStep& adam, const UnitState& state,
                  const Tensor& grad, const Tensor& low);

}  // namespace tessera
