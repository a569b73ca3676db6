// Optimizer state in pinned host memory (zero.offload_optimizer: cpu): the CPU AdamW steps it and
// writes the working copy in the same pass.
#include "zero/optimizer_state.h"

#include <algorithm>

namespace tessera {

namespace {

size_t largest_shard_bytes(const std::vector<UnitShard>& units) {
  int64_t most = 1;
  for (const UnitShard& u : units) most = std::max(most, u.size);
  return static_cast<size_t>(most) * sizeof(float);
}

class HostState : public OptimizerState {
 public:
  HostState(std::vector<UnitShard> units, Device device)
      : units_(std::move(units)), device_(device), staging_(largest_shard_bytes(units_), 2) {
    for (const UnitShard& u : units_) {
      Shards s;
      for (Tensor* t : {&s.state.master, &s.state.m, &s.state.v, &s.grad}) {
        *t = Tensor::empty_pinned({u.size}, DType::F32);
        ops::fill(*t, 0.0f);
      }
      shards_.push_back(std::move(s));
    }
  }

  void accumulate(size_t unit, const Tensor& shard, Work ready) override {
    ready.wait();
    Tensor stage = staging_.next(shard.numel(), DType::F32);  // DMA into pinned memory, then the CPU adds
    copy_bytes(stage, shard);
    Tensor& grad = shards_.at(unit).grad;
    ops::add(grad, grad, stage);
  }

  Tensor grad_norm_sq() override {
    Tensor norm_sq = Tensor::empty({1}, DType::F32);
    ops::fill(norm_sq, 0.0f);
    for (const Shards& s : shards_) ops::sum_squares(norm_sq, s.grad);
    return norm_sq.to(device_);
  }

  void step(const ops::AdamWStep& adam, WorkingCopy& low) override {
    for (size_t i = 0; i < units_.size(); ++i) {
      adamw_ranges(units_[i], 0, adam, shards_[i].state, shards_[i].grad, low.target(i, /*host=*/true));
      low.commit(i);
    }
    zero_grads();
  }

  void zero_grads() override {
    for (const Shards& s : shards_) ops::fill(s.grad, 0.0f);
  }

  void visit(size_t unit, bool, const std::function<void(const UnitState&)>& fn) override {
    fn(shards_.at(unit).state);
  }

 private:
  struct Shards {
    UnitState state;
    Tensor grad;
  };
  std::vector<UnitShard> units_;
  Device device_;
  StagingRing staging_;
  std::vector<Shards> shards_;
};

}  // namespace

std::unique_ptr<OptimizerState> make_host_state(std::vector<UnitShard> units, Device device) {
  return std::make_unique<HostState>(std::move(units), device);
}

}  // namespace tessera
