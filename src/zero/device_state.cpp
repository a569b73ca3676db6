// Optimizer state on the training device (no offload): the device AdamW writes the working copy.
#include "zero/optimizer_state.h"

#include <algorithm>

namespace tessera {

namespace {

class DeviceState : public OptimizerState {
 public:
  DeviceState(std::vector<UnitShard> units, Device device) : units_(std::move(units)), device_(device) {
    for (const UnitShard& u : units_) {
      Shards s;
      for (Tensor* t : {&s.state.master, &s.state.m, &s.state.v, &s.grad}) {
        *t = Tensor::empty({u.size}, DType::F32, device);
        ops::fill(*t, 0.0f);
      }
      shards_.push_back(std::move(s));
    }
    parts_ = Tensor::empty({static_cast<int64_t>(units_.size())}, DType::F32, device);
    taken_.assign(units_.size(), false);
  }

  Tensor direct_grad(size_t unit) override {
    Shards& s = shards_.at(unit);
    if (s.written) return Tensor();
    s.written = true;
    s.zeroed = false;  // from here on it holds this step's gradient
    return s.grad;
  }

  bool grad_zeroed(size_t unit) const override { return !shards_.at(unit).written && shards_.at(unit).zeroed; }

  void accumulate(size_t unit, const Tensor& shard) override {
    Shards& s = shards_.at(unit);
    if (s.written) ops::add(s.grad, s.grad, shard);
    else ops::copy(s.grad, shard);  // the step's first gradient: no zero fill, no add
    s.written = true;
  }

  Tensor grad_norm_sq() override {
    Tensor norm_sq = Tensor::empty({2}, DType::F32, device_);
    ops::fill(norm_sq, 0.0f);
    // Where some units' norms were taken ahead (take_norm), each unit's sum goes to its own part and
    // the parts are added in unit order: sum_squares adds a unit's sum to its output as one f32, so
    // 0 + sum, then the ordered adds, round exactly as the direct accumulation does.
    const bool parts = std::find(taken_.begin(), taken_.end(), true) != taken_.end();
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (!shards_[i].written) ops::fill(shards_[i].grad, 0.0f);  // no gradient reached it in this step
      shards_[i].written = true;
      const Tensor out = norm_sq.flat_slice(units_[i].sharded ? 0 : 1, 1);
      if (!parts) {
        ops::sum_squares(out, shards_[i].grad);
        continue;
      }
      if (!taken_[i]) take_norm(i);
      ops::add(out, out, parts_.flat_slice(static_cast<int64_t>(i), 1));
    }
    taken_.assign(units_.size(), false);
    return norm_sq;
  }

  void take_norm(size_t i) override {
    const Tensor part = parts_.flat_slice(static_cast<int64_t>(i), 1);
    ops::fill(part, 0.0f);
    ops::sum_squares(part, shards_.at(i).grad);
    taken_[i] = true;
  }

  void step(const ops::AdamWStep& adam, WorkingCopy& low) override {
    for (size_t i = 0; i < units_.size(); ++i) step_unit(i, adam, low);
    zero_grads();
  }

  bool steps_by_unit() const override { return true; }

  void step_unit(size_t i, const ops::AdamWStep& adam, WorkingCopy& low) override {
    adamw_ranges(units_.at(i), 0, adam, shards_[i].state, shards_[i].grad, low.target(i, /*host=*/false));
    low.commit(i);
    shards_[i].zeroed = adam.zero_grad;
  }

  void zero_grads() override {
    for (Shards& s : shards_) {
      s.written = false;  // the next step's first gradient overwrites it
      s.zeroed = false;
    }
  }

  void visit(bool, const StateVisitor& fn) override {
    for (size_t i = 0; i < shards_.size(); ++i) fn(i, shards_[i].state, 0);
  }

  void refresh(WorkingCopy& low) override {
    for (size_t i = 0; i < shards_.size(); ++i) {
      ops::copy(low.target(i, /*host=*/false), shards_[i].state.master);
      low.commit(i);
    }
  }

 private:
  struct Shards {
    UnitState state;
    Tensor grad;
    bool written = false;  // grad holds part of this step's gradient; else it is stale
    bool zeroed = false;   // ... or holds zeros (the last update zeroed it)
  };
  std::vector<UnitShard> units_;
  Device device_;
  std::vector<Shards> shards_;
  Tensor parts_;             // f32 [units]: each unit's squared norm, where taken ahead
  std::vector<bool> taken_;  // ... for this step
};

}  // namespace

std::unique_ptr<OptimizerState> make_device_state(std::vector<UnitShard> units, Device device) {
  return std::make_unique<DeviceState>(std::move(units), device);
}

}  // namespace tessera
