#include "zero/zero_store.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/log.h"

namespace tessera {

struct ZeroStore::Unit {
  UnitLayout layout;
  ShardLayout shard{0, 1};
  int owner = 0;               // this rank's index in `shard` (0 when nothing is sharded)
  Tensor master, m, v, grad;   // f32 [shard.shard]: what this rank owns
  Tensor low;                  // compute dtype [shard.shard]: its slice of the working copy
  Tensor low_host;             // offload: the same slice, written by the CPU AdamW, then uploaded
  Tensor grad_stage;           // offload: pinned landing buffer for the shard's reduced gradient
  Tensor full;                 // compute dtype [shard.padded()]: the gathered working copy
  Tensor full_grad;            // f32 [shard.padded()]: the unit's gradient during backward (`grad` itself
                               // when nothing is sharded and nothing offloaded: no copy at all)
  bool grad_written = false;   // `grad` holds part of this step's gradient; else it is stale, and the
                               // next reduction writes it instead of adding (no zero fill)
  std::shared_ptr<Work> reducing;  // the gradient's reduction (shared by a bucket), in flight until land()
  Tensor reduced;              // where it lands when it must be added or copied into `grad`
  bool reduce_pending = false;
  ModelParams views, grad_views;
  int acquired = 0;
  Work gathering;              // an all-gather started ahead of use
  bool in_flight = false;
};

ZeroStore::ZeroStore(const ModelConfig& config, const ZeroOptions& options, Communicator& comm)
    : config_(config), options_(options), comm_(comm) {
  TS_CHECK(options.stage >= 0 && options.stage <= 3, "zero.stage must be 0..3, got {}", options.stage);
  const Device dev = options.device;
  std::vector<UnitLayout> layouts = model_units(config);
  UnitLayout persistent = split_persistent(layouts, options.persist_below);
  const size_t sharded_units = layouts.size();
  if (!persistent.params.empty()) layouts.push_back(std::move(persistent));  // last: never acquired itself
  for (UnitLayout& layout : layouts) {
    const bool sharded = options.stage >= 1 && units_.size() < sharded_units;
    auto u = std::make_unique<Unit>();
    u->layout = std::move(layout);
    u->shard = ShardLayout(u->layout.numel, sharded ? comm.size() : 1);
    u->owner = sharded ? comm.rank() : 0;
    for (Tensor* t : {&u->master, &u->m, &u->v, &u->grad}) {
      *t = state_tensor(u->shard.shard, DType::F32);
      ops::fill(*t, 0.0f);
    }
    u->low = Tensor::empty({u->shard.shard}, options.compute_dtype, dev);
    if (options.offload_optimizer) {
      u->low_host = state_tensor(u->shard.shard, options.compute_dtype);
      u->grad_stage = state_tensor(u->shard.shard, DType::F32);
    }
    units_.push_back(std::move(u));
  }
  if (units_.size() > sharded_units) persistent_ = units_.back().get();
}

ZeroStore::~ZeroStore() = default;

Tensor ZeroStore::state_tensor(int64_t n, DType dtype) const {
  return options_.offload_optimizer ? Tensor::empty_pinned({n}, dtype) : Tensor::empty({n}, dtype, options_.device);
}

void ZeroStore::upload_working_copy(Unit& u) { copy_bytes(u.low, u.low_host, /*async=*/true); }

ZeroStore::Unit& ZeroStore::unit(UnitId id) { return *units_.at(unit_index(config_, id)); }

int64_t ZeroStore::num_params() const {
  int64_t n = 0;
  for (const auto& u : units_) n += u->layout.numel;
  return n;
}

template <typename Fn>
void ZeroStore::for_owned(const Unit& u, Fn&& fn) const {
  const int64_t begin = u.shard.begin(u.owner), end = u.shard.end(u.owner);
  for (const UnitParam& p : u.layout.params) {
    const int64_t lo = std::max(p.offset, begin), hi = std::min(p.offset + p.numel(), end);
    if (lo < hi) fn(p, lo - p.offset, hi - p.offset, lo - begin);
  }
}

void ZeroStore::bind(Unit& u, const Tensor& flat, const Tensor& persistent_flat, ModelParams& views) {
  views = ModelParams();
  views.layers.resize(config_.num_hidden_layers);
  for (const UnitParam& p : u.layout.params) param_slot(views, p.name) = flat.flat_slice(p.offset, p.numel()).view(p.shape);
  for (const UnitParam& p : u.layout.persistent)
    param_slot(views, p.name) = persistent_flat.flat_slice(p.offset, p.numel()).view(p.shape);
}

void ZeroStore::start_gather(Unit& u) {
  if (u.shard.world == 1) {
    u.full = u.low;  // nothing sharded: the working copy is the whole unit
    return;
  }
  u.full = Tensor::empty({u.shard.padded()}, options_.compute_dtype, options_.device);
  u.gathering = comm_.all_gather(u.full, u.low);
  u.in_flight = true;
}

void ZeroStore::finish_gather(Unit& u) {
  if (u.in_flight) {
    u.gathering.wait();
    u.in_flight = false;
  }
  bind(u, u.full, persistent_ ? persistent_->low : Tensor(), u.views);
}

void ZeroStore::gather(Unit& u) {
  start_gather(u);
  finish_gather(u);
}

void ZeroStore::prefetch_after(size_t position) {
  for (int ahead = 1; ahead <= options_.prefetch && position + ahead < order_.size(); ++ahead) {
    Unit& next = *units_[order_[position + ahead]];
    if (!next.full.defined()) start_gather(next);
  }
}

void ZeroStore::init_random(uint64_t seed, float std) {
  for (auto& u : units_) {
    for_owned(*u, [&](const UnitParam& p, int64_t b, int64_t e, int64_t at) {
      Tensor slice = u->master.flat_slice(at, e - b);
      if (p.decays())
        ops::fill_normal(slice, seed, static_cast<uint64_t>(p.model_offset + b), 0.0f, std);
      else
        ops::fill(slice, p.name.ends_with("norm.weight") ? 1.0f : 0.0f);
    });
  }
  refresh_working_copy();
}

void ZeroStore::refresh_working_copy() {
  for (auto& u : units_) {
    if (options_.offload_optimizer) {
      ops::copy(u->low_host, u->master);
      upload_working_copy(*u);
    } else {
      ops::copy(u->low, u->master);
    }
    if (options_.stage < 3) gather(*u);
  }
}

std::vector<ZeroStore::StateSlice> ZeroStore::owned_state(bool unique) {
  std::vector<StateSlice> out;
  for (auto& u : units_) {
    if (unique && u->shard.world == 1 && comm_.rank() != 0) continue;  // whole on every rank: rank 0 writes it
    for_owned(*u, [&](const UnitParam& p, int64_t b, int64_t e, int64_t at) {
      out.push_back({&p, b, e, u->master.flat_slice(at, e - b), u->m.flat_slice(at, e - b), u->v.flat_slice(at, e - b)});
    });
  }
  return out;
}

void ZeroStore::load(const SafetensorsModel& checkpoint) {
  for (auto& u : units_) {
    for_owned(*u, [&](const UnitParam& p, int64_t b, int64_t e, int64_t at) {
      const Tensor part = with_context(p.name, [&] { return checkpoint.tensor(p.name).flat_slice(b, e - b); });
      copy_bytes(u->master.flat_slice(at, e - b), ops::cast(part, DType::F32));
    });
  }
  refresh_working_copy();
}

const ModelParams& ZeroStore::acquire(UnitId id) {
  const size_t index = unit_index(config_, id);
  Unit& u = *units_[index];
  if (options_.stage == 3) {
    if (recording_) {
      order_.push_back(index);
    } else {
      // Follow the recorded order; a pass that departs from it (an evaluation) finds its place again.
      size_t at = cursor_;
      while (at < order_.size() && order_[at] != index) ++at;
      if (at == order_.size()) at = std::find(order_.begin(), order_.end(), index) - order_.begin();
      cursor_ = at + 1;
      if (!u.full.defined()) start_gather(u);
      prefetch_after(at);
    }
  }
  if (!u.full.defined()) start_gather(u);
  if (u.acquired == 0) finish_gather(u);
  ++u.acquired;
  return u.views;
}

void ZeroStore::release(UnitId id) {
  Unit& u = unit(id);
  TS_CHECK(u.acquired > 0, "ZeroStore: release without acquire");
  if (--u.acquired == 0 && options_.stage == 3 && !u.in_flight) {
    u.views = ModelParams();
    u.full = Tensor();
  }
}

ModelParams& ZeroStore::grads(UnitId id) {
  Unit& u = unit(id);
  if (!u.full_grad.defined()) {
    // Persistent parameters accumulate in their group's buffer until the step, over every unit and micro-batch.
    const Tensor persistent = u.layout.persistent.empty() ? Tensor() : grad_buffer(*persistent_);
    bind(u, grad_buffer(u), persistent, u.grad_views);
  }
  return u.grad_views;
}

const Tensor& ZeroStore::grad_buffer(Unit& u) {
  if (!u.full_grad.defined()) {
    const bool in_place = u.shard.world == 1 && !options_.offload_optimizer;
    u.full_grad = in_place ? u.grad : Tensor::empty({u.shard.padded()}, DType::F32, options_.device);
    ops::fill(u.full_grad, 0.0f);
    if (in_place) u.grad_written = true;
  }
  return u.full_grad;
}

void ZeroStore::grads_done(UnitId id) {
  Unit& u = unit(id);
  // Stages 0-1 and unsharded units accumulate whole gradients over the micro-batches and reduce
  // them at the step.
  if (options_.stage < 2 || u.shard.world == 1) return;
  enqueue_reduce(u);
}

void ZeroStore::enqueue_reduce(Unit& u) {
  // Met again (the next micro-batch) before its reduction started: grads() handed backward the
  // same buffer, which now holds both micro-batches' sum.
  if (std::find(bucket_.begin(), bucket_.end(), &u) != bucket_.end()) return;
  land(u);  // its previous micro-batch's reduction must be in `grad` before this one adds to it
  bucket_.push_back(&u);
  bucket_bytes_ += static_cast<int64_t>(u.full_grad.nbytes());
  if (bucket_bytes_ >= options_.reduce_bucket_bytes) flush_bucket();
}

void ZeroStore::flush_bucket() {
  // The previous bucket's reductions ran while this one's backward computed; finishing them now
  // costs the compute stream at most an event wait, and bounds the landing buffers alive to two
  // buckets.
  for (Unit* u : std::exchange(in_flight_, {})) land(*u);
  if (bucket_.empty()) return;
  std::vector<Tensor> outs, ins;
  for (Unit* u : bucket_) {
    // The first reduction of a step writes the shard's gradient straight into `grad`; later ones
    // (accumulation) and offloaded ones land in a buffer of the compute device first.
    const bool direct = !u->grad_written && !options_.offload_optimizer;
    if (!direct) u->reduced = Tensor::empty({u->shard.shard}, DType::F32, options_.device);
    u->grad_written = u->grad_written || direct;
    outs.push_back(direct ? u->grad : u->reduced);
    ins.push_back(u->full_grad);
  }
  auto work = std::make_shared<Work>(comm_.reduce_scatter_many(outs, ins, ReduceOp::Sum));
  for (Unit* u : bucket_) {
    u->reducing = work;
    started_reduce(*u);
  }
  in_flight_ = std::exchange(bucket_, {});
  bucket_bytes_ = 0;
}

void ZeroStore::reduce_whole(Unit& u) {
  // Whole on every rank: summed in place, then copied to `grad` unless it is `grad`.
  u.reducing = std::make_shared<Work>(comm_.size() > 1 ? comm_.all_reduce(u.full_grad, ReduceOp::Sum) : Work());
  if (u.full_grad.data() != u.grad.data()) u.reduced = u.full_grad;
  started_reduce(u);
}

void ZeroStore::started_reduce(Unit& u) {
  u.reduce_pending = true;
  u.grad_views = ModelParams();
  u.full_grad = Tensor();  // the communicator keeps it alive until the reduction has read it
}

void ZeroStore::land(Unit& u) {
  if (!u.reduce_pending) return;
  u.reduce_pending = false;
  u.reducing->wait();
  u.reducing.reset();
  Tensor got = std::exchange(u.reduced, Tensor());
  if (!got.defined()) return;  // reduced in place
  if (!u.grad_written) {
    copy_bytes(u.grad, got);  // offload: by DMA into pinned memory
    u.grad_written = true;
    return;
  }
  if (options_.offload_optimizer) {
    copy_bytes(u.grad_stage, got);
    got = u.grad_stage;
  }
  ops::add(u.grad, u.grad, got);
}

StepResult ZeroStore::step(const ops::AdamWStep& adam, double clip_norm) {
  // Whole gradients still accumulated (stages 0-1, unsharded units) are reduced now, all at once.
  for (auto& u : units_) {
    if (!u->full_grad.defined()) continue;
    if (u->shard.world == 1)
      reduce_whole(*u);
    else
      enqueue_reduce(*u);  // stage 1
  }
  flush_bucket();
  for (auto& u : units_) {
    land(*u);
    if (!u->grad_written) ops::fill(u->grad, 0.0f);  // no gradient reached this unit in this step
  }
  in_flight_.clear();
  // Squared norms: [0] of sharded gradients (summed over the ranks), [1] of unsharded ones
  // (equal on every rank: counted once).
  Tensor norm_sq = Tensor::empty({2}, DType::F32, state_device());
  ops::fill(norm_sq, 0.0f);
  for (auto& u : units_) ops::sum_squares(norm_sq.flat_slice(u->shard.world > 1 ? 0 : 1, 1), u->grad);
  norm_sq = norm_sq.to(options_.device);  // the communicator's device
  if (options_.stage >= 1 && comm_.size() > 1) comm_.all_reduce(norm_sq.flat_slice(0, 1), ReduceOp::Sum).wait();
  recording_ = false;  // the first step's order is the one to prefetch by
  cursor_ = 0;
  StepResult result;
  const Tensor sums = norm_sq.to(Device::cpu());
  result.grad_norm = std::sqrt(static_cast<double>(sums.data_as<float>()[0]) + sums.data_as<float>()[1]);
  result.skipped = !std::isfinite(result.grad_norm);
  if (!result.skipped) {
    const double coef = clip_norm > 0 ? std::min(1.0, clip_norm / (result.grad_norm + 1e-6)) : 1.0;
    for (auto& u : units_) {
      for_owned(*u, [&](const UnitParam& p, int64_t b, int64_t e, int64_t at) {
        ops::AdamWStep s = adam;
        s.grad_scale = static_cast<float>(coef);
        if (!p.decays()) s.weight_decay = 0.0f;
        const int64_t n = e - b;
        const Tensor& low = options_.offload_optimizer ? u->low_host : u->low;
        ops::adamw(u->master.flat_slice(at, n), u->grad.flat_slice(at, n), u->m.flat_slice(at, n),
                   u->v.flat_slice(at, n), s, low.flat_slice(at, n));
      });
      if (options_.offload_optimizer) upload_working_copy(*u);
    }
  }
  for (auto& u : units_) {
    u->grad_written = false;  // the next step's first reduction overwrites the gradient
    if (options_.stage < 3 && !result.skipped) gather(*u);
  }
  return result;
}

}  // namespace tessera
