// Optimizer state in pinned host memory (zero.offload_optimizer: cpu), stepped by the CPU AdamW,
// which writes the working copy in the same pass.
//
// Gradients (f32 shards) either accumulate in pinned host memory or stay on the device:
//   host    each unit's reduced shard is copied to the host on a copy stream as soon as its
//           reduce-scatter is done, so the copies overlap the rest of backward. The first shard of
//           a step lands straight in the accumulator (no add); later ones (gradient accumulation)
//           land in a small staging ring and the CPU adds them. With one shard per unit, the norm
//           is taken on the device from the shards before they leave, so the step of the first
//           unit need not wait for the last copy.
//   device  the accumulators stay on the device (for hosts too small to hold them), the first shard
//           of a step written straight into them; at the step each unit's shard is copied down
//           one unit ahead of the CPU AdamW.
// The step walks the units in the order backward finished them; each unit's new working copy is
// uploaded (queued on the compute stream) as soon as the CPU has written it.
#include <algorithm>
#include <deque>

#include "core/error.h"
#include "zero/optimizer_state.h"
#include "offload/home.h"
#include "offload/staging_ring.h"

namespace tessera {

namespace {

size_t largest_shard_bytes(const std::vector<UnitShard>& units) {
  int64_t most = 1;
  for (const UnitShard& u : units) most = std::max(most, u.size);
  return static_cast<size_t>(most) * sizeof(float);
}

class HostState : public OptimizerState {
 public:
  HostState(std::vector<UnitShard> units, Device device, bool grads_on_device, std::unique_ptr<offload::Home> home)
      : units_(std::move(units)), device_(device), grads_on_device_(grads_on_device), home_(std::move(home)),
        rounds_(units_.size(), 0), arrived_(units_.size()), staging_(largest_shard_bytes(units_), static_cast<int>(kStages)),
        download_ring_(largest_shard_bytes(units_), 2) {
    if (device_.is_cuda()) copy_stream_ = create_stream(device_.index);
    for (const UnitShard& u : units_)
      grads_.push_back(grads_on_device_ ? Tensor::empty({u.size}, DType::F32, device_)
                                        : Tensor::empty_pinned({u.size}, DType::F32));
    unit_norms_ = Tensor::empty({static_cast<int64_t>(units_.size())}, DType::F32, device_);
    ops::fill(unit_norms_, 0.0f);
  }

  ~HostState() override {
    if (copy_stream_) {
      synchronize_stream(copy_stream_);
      // Device tensors marked with record_stream(copy_stream_) are freed first: freeing one
      // records an event on that stream, which must still exist then.
      grads_.clear();
      unit_norms_ = Tensor();
      destroy_stream(copy_stream_);
    }
  }

  // A step's first shard may land in a device accumulator in place (rounds_ then counts it): on one
  // rank the whole gradient is then the accumulator itself, not a second copy beside it. Host
  // accumulators take every shard through accumulate().
  Tensor direct_grad(size_t unit) override {
    if (!grads_on_device_ || rounds_.at(unit) > 0) return Tensor();
    ++rounds_[unit];
    return grads_[unit];
  }

  void accumulate(size_t unit, const Tensor& shard) override {
    int& rounds = rounds_.at(unit);
    if (grads_on_device_) {
      if (rounds == 0) ops::copy(grads_[unit], shard);  // overwrites the last step's
      else ops::add(grads_[unit], grads_[unit], shard);
    } else if (rounds == 0) {
      ops::sum_squares(unit_norms_.flat_slice(static_cast<int64_t>(unit), 1), shard);
      download(grads_[unit], shard);
      if (copy_stream_) arrived_[unit].record(copy_stream_);
    } else {
      if (pending_.size() == kStages) add_pending();  // frees the buffer that next() hands out
      Pending p{unit, staging_.next(shard.numel(), DType::F32), Event()};
      download(p.stage, shard);
      staging_.used_on(copy_stream_);
      if (copy_stream_) p.copied.record(copy_stream_);
      pending_.push_back(std::move(p));
    }
    ++rounds;
  }

  Tensor grad_norm_sq() override {
    Tensor norm_sq = Tensor::empty({2}, DType::F32, device_);
    ops::fill(norm_sq, 0.0f);
    if (grads_on_device_) {
      for (size_t i = 0; i < units_.size(); ++i) {
        if (rounds_[i] == 0) ops::fill(grads_[i], 0.0f);  // no gradient reached it in this step
        ops::sum_squares(norm_slot(norm_sq, i), grads_[i]);
      }
      return norm_sq;
    }
    if (std::all_of(rounds_.begin(), rounds_.end(), [](int r) { return r <= 1; })) {
      // Each unit's norm was taken from its one shard; sum them in unit order.
      const std::vector<float> parts = unit_norms_.to_vector<float>();
      float totals[2] = {0.0f, 0.0f};
      for (size_t i = 0; i < parts.size(); ++i) totals[units_[i].sharded ? 0 : 1] += parts[i];
      ops::fill(unit_norms_, 0.0f);
      return Tensor::from_vector<float>({totals[0], totals[1]}, {2}, DType::F32).to(device_);
    }
    gradients_landed();
    Tensor host_sq = Tensor::empty({2}, DType::F32);
    ops::fill(host_sq, 0.0f);
    for (size_t i = 0; i < units_.size(); ++i)
      if (rounds_[i] > 0) ops::sum_squares(norm_slot(host_sq, i), grads_[i]);
    ops::fill(unit_norms_, 0.0f);
    return host_sq.to(device_);
  }

  void step(const ops::AdamWStep& adam, WorkingCopy& low) override {
    while (!pending_.empty()) add_pending();
    const std::vector<size_t> order = step_order();
    if (grads_on_device_) after_compute();  // the downloads follow the last accumulation
    std::deque<Fetched> fetched;             // the unit being stepped and the next one
    size_t ahead = 0, current = kNone;
    fetched.push_back(fetch(order[ahead++]));
    Tensor low_part;
    stream_state(order, /*write=*/true, [&](size_t unit, const UnitState& state, int64_t first) {
      if (unit != current) {
        if (current != kNone) {
          low.commit(current);  // the upload is queued now, while the CPU goes on with the next unit
          fetched.pop_front();
        }
        current = unit;
        if (ahead < order.size()) fetched.push_back(fetch(order[ahead++]));  // arrives meanwhile
        fetched.front().copied.synchronize();
        low_part = low.target(unit, /*host=*/true);
      }
      const int64_t n = state.master.numel();
      adamw_ranges(units_[unit], first, adam, state, fetched.front().grad.flat_slice(first, n),
                   low_part.flat_slice(first, n));
    });
    if (current != kNone) low.commit(current);
    zero_grads();
  }

  void zero_grads() override {
    while (!pending_.empty()) add_pending();
    std::fill(rounds_.begin(), rounds_.end(), 0);  // every accumulator is overwritten by the step's first shard
    ops::fill(unit_norms_, 0.0f);
  }

  void visit(bool write, const StateVisitor& fn) override { stream_state(unit_order(), write, fn); }

  void refresh(WorkingCopy& low) override {
    size_t current = kNone;
    Tensor low_part;
    stream_state(unit_order(), /*write=*/false, [&](size_t unit, const UnitState& state, int64_t first) {
      if (unit != current) {
        if (current != kNone) low.commit(current);
        current = unit;
        low_part = low.target(unit, /*host=*/true);
      }
      ops::copy(low_part.flat_slice(first, state.master.numel()), state.master);
    });
    if (current != kNone) low.commit(current);
  }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  static constexpr size_t kStages = 2;
  struct Pending {
    size_t unit;
    Tensor stage;
    Event copied;
  };
  struct Fetched {
    Tensor grad;  // host
    Event copied;
  };

  void stream_state(const std::vector<size_t>& order, bool write, const StateVisitor& fn) {
    home_->stream(order, write, [&](size_t unit, int64_t first, const std::vector<Tensor>& parts) {
      fn(unit, {parts[0], parts[1], parts[2]}, first);
    });
  }

  Tensor norm_slot(const Tensor& norm_sq, size_t unit) const { return norm_sq.flat_slice(units_[unit].sharded ? 0 : 1, 1); }

  // Queues dst (host) <- src (device) on the copy stream, after the compute stream's work so far.
  void download(const Tensor& dst, const Tensor& src) {
    if (!copy_stream_) {
      copy_bytes(dst, src);
      return;
    }
    after_compute();
    StreamGuard guard(device_.index, copy_stream_);
    copy_bytes(dst, src, /*async=*/true);
    src.record_stream(copy_stream_);
  }

  void after_compute() {
    if (!copy_stream_) return;
    Event computed;
    computed.record(current_stream(device_.index));
    computed.wait_on(copy_stream_);
  }

  void add_pending() {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    arrived_[p.unit].synchronize();  // the accumulator's first shard
    p.copied.synchronize();
    ops::add(grads_[p.unit], grads_[p.unit], p.stage);
  }

  void gradients_landed() {
    while (!pending_.empty()) add_pending();
    for (const Event& e : arrived_) e.synchronize();
  }

  std::vector<size_t> unit_order() const {
    std::vector<size_t> order(units_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    return order;
  }
  // Backward finishes the head first and the embedding last; the copies arrive in that order.
  std::vector<size_t> step_order() const {
    std::vector<size_t> order = unit_order();
    std::reverse(order.begin(), order.end());
    return order;
  }

  // The unit's summed gradient on the host, or a copy of it on its way there.
  Fetched fetch(size_t unit) {
    Fetched f;
    if (!grads_on_device_) {
      f.grad = grads_[unit];
      if (rounds_[unit] == 0) ops::fill(f.grad, 0.0f);  // no shard this step: nothing was copied in
      f.copied = std::move(arrived_[unit]);
      arrived_[unit] = Event();
      return f;
    }
    f.grad = download_ring_.next(grads_[unit].numel(), DType::F32);
    download(f.grad, grads_[unit]);
    download_ring_.used_on(copy_stream_);
    if (copy_stream_) f.copied.record(copy_stream_);
    return f;
  }

  std::vector<UnitShard> units_;
  Device device_;
  bool grads_on_device_;
  std::unique_ptr<offload::Home> home_;
  Stream copy_stream_ = nullptr;
  std::vector<Tensor> grads_;
  std::vector<int> rounds_;      // shards accumulated per unit this step
  std::vector<Event> arrived_;   // host gradients: the copy of the unit's first shard
  Tensor unit_norms_;            // f32 [units] on the device: squared norm of each unit's first shard
  offload::StagingRing staging_;          // later shards of a step, added by the CPU
  std::deque<Pending> pending_;
  offload::StagingRing download_ring_;    // device gradients on their way to the CPU AdamW
};

}  // namespace

std::unique_ptr<OptimizerState> make_host_state(std::vector<UnitShard> units, Device device, bool grads_on_device,
                                                std::unique_ptr<offload::Home> home) {
  return std::make_unique<HostState>(std::move(units), device, grads_on_device, std::move(home));
}

}  // namespace tessera
