#include "zero/zero_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "core/stream.h"

namespace tessera {

namespace {

// `bytes` (u8) reinterpreted as a tensor of `shape` and `dtype`.
Tensor view_bytes(const Tensor& bytes, int64_t offset, const Shape& shape, DType dtype) {
  return Tensor::wrap(static_cast<char*>(bytes.data()) + offset, shape, dtype, bytes.device(), bytes.storage());
}

int64_t stored_bytes(const UnitParam& p, DType dtype) {
  return p.quant ? packed_bytes(*p.quant, p.shape) : p.numel() * static_cast<int64_t>(dtype_size(dtype));
}

// A packed base weight whole, quantized on `device` from `whole` (its values, any floating dtype,
// on the host; undefined: initialised by its rule), as the bytes of its packed layout on the host
// (alignment gaps zeroed). Every rank holding a piece of it quantizes the whole tensor: NF4's
// double quantization depends on all of its blocks.
Tensor packed_bytes_of(const UnitParam& p, const Tensor& whole, Device device, uint64_t seed, float std) {
  Tensor source;
  if (whole.defined()) {
    source = ops::cast(whole.view(p.shape).to(device), DType::F32);
  } else {
    source = Tensor::empty(p.shape, DType::F32, device);  // the same Philox values on either backend
    init_param(p, source, seed, static_cast<uint64_t>(p.model_offset), std);
  }
  const PackedTensor packed = PackedTensor::empty(*p.quant, p.shape, device);
  ops::quantize(packed, source);
  Tensor bytes = Tensor::empty({packed_bytes(*p.quant, p.shape)}, DType::U8);
  std::memset(bytes.data(), 0, bytes.nbytes());
  const PackedTensor host = PackedTensor::view(*p.quant, p.shape, bytes);
  for (size_t i = 0; i < packed.parts.size(); ++i) copy_bytes(host.parts[i], packed.parts[i]);
  return bytes;
}

}  // namespace

// A unit's frozen tensors: one byte buffer, sharded at stage 3 (else whole on every rank).
struct FrozenPart {
  ShardLayout shard{0, 1};
  size_t slot = 0;  // in the working copy
  Tensor full;      // u8 [shard.padded()]: gathered
  Work gathering;
  bool in_flight = false;
};

struct ZeroStore::Unit {
  size_t index = 0;            // in model_units() order
  UnitLayout layout;
  ShardLayout shard{0, 1};
  int owner = 0;               // this rank's index in `shard` (0 when nothing is sharded)
  std::vector<OwnedRange> owned;
  FrozenPart frozen;
  Tensor full;                 // compute dtype [shard.padded()]: the gathered working copy
  Tensor full_grad;            // f32 [shard.padded()]: the unit's gradient during backward (the
                               // optimizer state's own accumulator when nothing is sharded: no copy)
  bool in_place = false;       // full_grad is that accumulator
  std::shared_ptr<Work> reducing;  // the gradient's reduction (shared by a bucket), in flight until land()
  Tensor reduced;              // where it lands when the optimizer state must still take it
  bool reduce_pending = false;
  ModelParams views, grad_views;
  int acquired = 0;
  Work gathering;              // an all-gather started ahead of use
  bool in_flight = false;
  bool step_pending = false;   // zero.overlap_step: its update of the last step, not yet awaited
  Event stepped;               // ... queued on the optimizer stream up to here (GPUs)
};

ZeroStore::ZeroStore(const ModelConfig& config, const ZeroOptions& options, Communicator& comm)
    : ZeroStore(config, model_parameters(config), options, comm) {}

ZeroStore::ZeroStore(const ModelConfig& config, std::vector<ParamSpec> params, const ZeroOptions& options,
                     Communicator& comm)
    : config_(config), options_(options), comm_(comm) {
  TS_CHECK(options.stage >= 0 && options.stage <= 3, "zero.stage must be 0..3, got {}", options.stage);
  TS_CHECK(options.offload_params == OffloadTo::none || options.stage == 3,
           "zero.offload_params needs zero.stage 3 (at stage {} every rank keeps the whole working copy on the "
           "device)", options.stage);
  for (const ParamSpec& p : params)
    if (p.trainable) trainable_.push_back(p);
  std::vector<UnitLayout> layouts = model_units(config, params, options.compute_dtype);
  UnitLayout persistent = split_persistent(layouts, options.persist_below);
  const size_t sharded_units = layouts.size();
  if (!persistent.params.empty()) layouts.push_back(std::move(persistent));  // last: never acquired itself
  std::vector<UnitShard> shards;
  std::vector<WorkingCopy::Slot> slots;
  for (UnitLayout& layout : layouts) {
    const bool sharded = options.stage >= 1 && units_.size() < sharded_units;
    auto u = std::make_unique<Unit>();
    u->index = units_.size();
    u->layout = std::move(layout);
    u->shard = ShardLayout(u->layout.numel, sharded ? comm.size() : 1);
    u->owner = sharded ? comm.rank() : 0;
    u->owned = owned_ranges(u->layout, u->shard, u->owner);
    // Frozen tensors never change: below stage 3 each rank keeps them whole (no gather to redo);
    // so does every rank a frozen embedding kept on the host (read row by row there).
    const bool on_host = embed_on_host(u->layout);
    u->frozen.shard =
        ShardLayout(u->layout.frozen_bytes, sharded && options.stage == 3 && !on_host ? comm.size() : 1);
    shards.push_back({u->shard.shard, u->owned, u->shard.world > 1});
    slots.push_back({u->shard.shard, options.compute_dtype});
    units_.push_back(std::move(u));
  }
  for (auto& u : units_) {
    u->frozen.slot = slots.size();
    slots.push_back({u->frozen.shard.shard, DType::U8, embed_on_host(u->layout)});
  }
  if (units_.size() > sharded_units) persistent_ = units_.back().get();
  if (options.offload_optimizer != OffloadTo::none) {
    const offload::HomeLayout layout = state_layout(shards);
    auto home = options.offload_optimizer == OffloadTo::nvme
                    ? offload::make_nvme_home(layout, options.nvme_optimizer, "optimizer", comm.rank())
                    : offload::make_pinned_home(layout);
    state_ = make_host_state(std::move(shards), options.device, options.offload_grads_on_device, std::move(home));
  } else {
    state_ = make_device_state(std::move(shards), options.device);
  }
  const auto home = options.offload_params == OffloadTo::nvme  ? WorkingCopy::Home::nvme
                    : options.offload_params == OffloadTo::cpu ? WorkingCopy::Home::host
                                                               : WorkingCopy::Home::device;
  low_ = std::make_unique<WorkingCopy>(std::move(slots), options.device, home, options.nvme_params, comm.rank());
  overlap_ = options.overlap_step && state_->steps_by_unit() && home == WorkingCopy::Home::device;
  if (options.overlap_step && !overlap_)
    spdlog::info("zero.overlap_step: not applied with optimizer or parameter offload; the optimizer step stays sequential");
  if (overlap_ && options.device.is_cuda()) optimizer_stream_ = create_stream(options.device.index);
}

ZeroStore::~ZeroStore() {
  if (!optimizer_stream_) return;
  synchronize_stream(optimizer_stream_);  // its last updates still read and write the state
  destroy_stream(optimizer_stream_);
}

void ZeroStore::await_step(Unit& u) {
  if (!u.step_pending) return;
  u.step_pending = false;
  if (optimizer_stream_)
    u.stepped.wait_on(current_stream(options_.device.index));
  else
    state_->step_unit(u.index, update_of(u, pending_adam_), *low_);
}

ops::AdamWStep ZeroStore::update_of(const Unit& u, const ops::AdamWStep& clipped) const {
  ops::AdamWStep a = clipped;
  // A whole unit's gradient accumulates in place from zero at the next backward: the update zeroes
  // it as it reads it, so that backward needs no fill (a shard's is overwritten by its reduction).
  a.zero_grad = u.shard.world == 1;
  return a;
}

void ZeroStore::await_steps() {
  for (auto& u : units_) await_step(*u);
}

bool ZeroStore::embed_on_host(const UnitLayout& layout) const {
  if (!options_.embed_on_host || !(layout.id == UnitId::embed())) return false;
  TS_CHECK(layout.params.empty() && layout.persistent.empty() && layout.frozen.size() == 1 &&
               layout.frozen[0].name == "model.embed_tokens.weight" && !layout.frozen[0].quant,
           "ZeroStore: embed_on_host needs a frozen embed_tokens alone in its unit (untied, not trained)");
  return true;
}

ZeroStore::Unit& ZeroStore::unit(UnitId id) { return *units_.at(unit_index(config_, id)); }

int64_t ZeroStore::trainable_params() const {
  int64_t n = 0;
  for (const auto& u : units_) n += u->layout.numel;
  return n;
}

int64_t ZeroStore::num_params() const {
  int64_t n = trainable_params();
  for (const auto& u : units_)
    for (const UnitParam& p : u->layout.frozen) n += p.numel();
  return n;
}

void ZeroStore::bind(Unit& u, const Tensor& flat, const Tensor& persistent_flat, const Tensor& frozen_full,
                     ModelParams& views) {
  views = ModelParams();
  views.layers.resize(config_.num_hidden_layers);
  for (const UnitParam& p : u.layout.params) param_slot(views, p.name) = flat.flat_slice(p.offset, p.numel()).view(p.shape);
  for (const UnitParam& p : u.layout.persistent)
    param_slot(views, p.name) = persistent_flat.flat_slice(p.offset, p.numel()).view(p.shape);
  if (frozen_full.defined()) {
    for (const UnitParam& p : u.layout.frozen) {
      if (!p.quant) {
        param_slot(views, p.name) = view_bytes(frozen_full, p.offset, p.shape, options_.compute_dtype);
        continue;
      }
      Linear* owner = weight_owner(views, p.name);
      TS_CHECK(owner, "ZeroStore: {} is stored packed but is no projection's weight", p.name);
      owner->packed = std::make_shared<const PackedTensor>(
          PackedTensor::view(*p.quant, p.shape, frozen_full.flat_slice(p.offset, packed_bytes(*p.quant, p.shape))));
      owner->packed_matmul = options_.packed_matmul;
    }
  }
  set_lora_scale(views, options_.lora_scale);
}

void ZeroStore::start_gather(Unit& u) {
  await_step(u);  // the gather reads the working copy (on the communication stream, after the current one)
  // A part that is not sharded is its working copy itself; an empty one (a unit with nothing
  // trainable) moves nothing.
  auto start = [&](const ShardLayout& shard, size_t slot, DType dtype, Tensor& full, Work& work, bool& in_flight) {
    if (shard.world == 1 || shard.numel == 0) {
      full = low_->on_device(slot);
      return;
    }
    full = Tensor::empty({shard.padded()}, dtype, options_.device);
    work = comm_.all_gather(full, low_->on_device(slot));
    in_flight = true;
  };
  start(u.shard, u.index, options_.compute_dtype, u.full, u.gathering, u.in_flight);
  if (!u.layout.frozen.empty() && !u.frozen.full.defined())
    start(u.frozen.shard, u.frozen.slot, DType::U8, u.frozen.full, u.frozen.gathering, u.frozen.in_flight);
}

void ZeroStore::finish_gather(Unit& u) {
  for (auto [work, in_flight] : {std::pair{&u.gathering, &u.in_flight}, std::pair{&u.frozen.gathering, &u.frozen.in_flight}}) {
    if (!*in_flight) continue;
    work->wait();
    *in_flight = false;
  }
  bind(u, u.full, u.layout.persistent.empty() ? Tensor() : low_->on_device(persistent_->index), u.frozen.full,
       u.views);
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
  // The unit after the window starts coming off a swap file now, while the units before it compute.
  const size_t after = position + static_cast<size_t>(options_.prefetch) + 1;
  if (after < order_.size() && !units_[order_[after]]->full.defined()) {
    const Unit& u = *units_[order_[after]];
    low_->read_ahead(u.index);
    if (!u.layout.frozen.empty()) low_->read_ahead(u.frozen.slot);
  }
}

void ZeroStore::load(const ParamValues& values, uint64_t seed, float std) {
  write_state([&](const StateSlice& s) {
    const UnitParam& p = *s.param;
    const Tensor whole = with_context(p.name, [&] { return values(p); });
    if (whole.defined())
      copy_bytes(s.master, ops::cast(whole.flat_slice(s.begin, s.end - s.begin), DType::F32));
    else
      init_param(p, s.master, seed, static_cast<uint64_t>(p.model_offset + s.begin), std);
  });
  for (auto& u : units_)
    if (!u->layout.frozen.empty()) load_frozen(*u, values, seed, std);
  refresh_working_copy();
}

void ZeroStore::load_frozen(Unit& u, const ParamValues& values, uint64_t seed, float std) {
  const int owner = u.frozen.shard.world > 1 ? comm_.rank() : 0;
  const int64_t begin = u.frozen.shard.begin(owner), end = u.frozen.shard.end(owner);
  const int64_t item = static_cast<int64_t>(dtype_size(options_.compute_dtype));
  const Tensor target = low_->target(u.frozen.slot, /*host=*/true);
  std::memset(target.data(), 0, target.nbytes());  // alignment gaps and padding
  for (const UnitParam& p : u.layout.frozen) {
    // The bytes [lo, hi) of this rank's range lie in p: its elements [first, last).
    const int64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + stored_bytes(p, options_.compute_dtype));
    if (lo >= hi) continue;
    if (p.quant) {
      const Tensor bytes = packed_bytes_of(p, with_context(p.name, [&] { return values(p); }), options_.device, seed, std);
      std::memcpy(static_cast<char*>(target.data()) + (lo - begin), static_cast<const char*>(bytes.data()) + (lo - p.offset),
                  static_cast<size_t>(hi - lo));
      continue;
    }
    const int64_t first = (lo - p.offset) / item, last = (hi - p.offset + item - 1) / item;
    Tensor part = with_context(p.name, [&] { return values(p); });
    if (part.defined()) {
      part = ops::cast(part.flat_slice(first, last - first), options_.compute_dtype);
    } else {
      Tensor init = Tensor::empty({last - first}, DType::F32);
      init_param(p, init, seed, static_cast<uint64_t>(p.model_offset + first), std);
      part = ops::cast(init, options_.compute_dtype);
    }
    std::memcpy(static_cast<char*>(target.data()) + (lo - begin),
                static_cast<const char*>(part.data()) + (lo - p.offset - first * item), static_cast<size_t>(hi - lo));
  }
  low_->commit(u.frozen.slot);
}

void ZeroStore::init_random(uint64_t seed, float std) {
  load([](const ParamSpec&) { return Tensor(); }, seed, std);
}

void ZeroStore::load(const SafetensorsModel& checkpoint, uint64_t seed, float std) {
  load([&](const ParamSpec& p) { return checkpoint.contains(p.name) ? checkpoint.tensor(p.name) : Tensor(); }, seed, std);
}

void ZeroStore::refresh_working_copy() {
  await_steps();
  state_->refresh(*low_);
  if (options_.stage < 3) {
    for (auto& u : units_) {
      u->full = Tensor();  // gathered again from the new slices (frozen parts stay)
      gather(*u);
    }
  }
}

template <typename Fn>
void ZeroStore::visit_state(bool write, Fn&& fn) {
  await_steps();  // a checkpoint reads (or a load writes) the state the last step's updates write
  state_->visit(write, [&](size_t index, const UnitState& s, int64_t first) {
    const Unit& u = *units_[index];
    const int64_t last = first + s.master.numel();
    for (const OwnedRange& r : u.owned) {
      const int64_t lo = std::max(r.at, first), hi = std::min(r.at + r.end - r.begin, last);
      if (lo >= hi) continue;
      const int64_t at = lo - first, n = hi - lo, begin = r.begin + lo - r.at;
      fn(u, StateSlice{r.param, begin, begin + n, s.master.flat_slice(at, n), s.m.flat_slice(at, n),
                       s.v.flat_slice(at, n)});
    }
  });
}

void ZeroStore::read_state(bool unique, const SliceVisitor& fn) {
  visit_state(/*write=*/false, [&](const Unit& u, const StateSlice& s) {
    if (!unique || u.shard.world > 1 || comm_.rank() == 0) fn(s);  // whole on every rank: rank 0 writes it
  });
}

void ZeroStore::write_state(const SliceVisitor& fn) {
  visit_state(/*write=*/true, [&](const Unit&, const StateSlice& s) { fn(s); });
}

const ModelParams& ZeroStore::acquire(UnitId id) {
  const size_t index = unit_index(config_, id);
  Unit& u = *units_[index];
  // The model reads the unit's working copy and (backward) writes its gradient, which the last
  // step's update reads; the persistent group comes with every unit.
  await_step(u);
  if (persistent_) await_step(*persistent_);
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
  if (--u.acquired == 0 && options_.stage == 3 && !u.in_flight && !u.frozen.in_flight) {
    u.views = ModelParams();
    u.full = Tensor();
    u.frozen.full = Tensor();
  }
}

ModelParams& ZeroStore::grads(UnitId id) {
  Unit& u = unit(id);
  if (!u.full_grad.defined() && (!u.layout.params.empty() || !u.layout.persistent.empty())) {
    // Persistent parameters accumulate in their group's buffer until the step, over every unit and
    // micro-batch. Frozen ones get no gradient: their views stay undefined.
    const Tensor persistent = u.layout.persistent.empty() ? Tensor() : grad_buffer(*persistent_);
    bind(u, grad_buffer(u), persistent, Tensor(), u.grad_views);
  } else if (!u.full_grad.defined()) {
    u.grad_views = ModelParams();
    u.grad_views.layers.resize(config_.num_hidden_layers);
  }
  return u.grad_views;
}

const Tensor& ZeroStore::grad_buffer(Unit& u) {
  if (!u.full_grad.defined()) {
    const bool zeroed = u.shard.world == 1 && state_->grad_zeroed(u.index);  // by the update behind
    const Tensor own = u.shard.world == 1 ? state_->direct_grad(u.index) : Tensor();
    u.in_place = own.defined();
    u.full_grad = u.in_place ? own : Tensor::empty({u.shard.padded()}, DType::F32, options_.device);
    if (!(u.in_place && zeroed)) ops::fill(u.full_grad, 0.0f);
  }
  return u.full_grad;
}

void ZeroStore::grads_done(UnitId id) {
  Unit& u = unit(id);
  // One rank, the state's own accumulator: nothing changes the gradient after the last backward.
  if (final_backward_ && overlap_ && options_.early_norm && comm_.size() == 1 && u.in_place && u.full_grad.defined())
    take_norm(u);
  // Stages 0-1 and unsharded units accumulate whole gradients over the micro-batches and reduce
  // them at the step.
  if (options_.stage < 2 || u.shard.world == 1 || !u.full_grad.defined()) return;
  enqueue_reduce(u);
}

void ZeroStore::enqueue_reduce(Unit& u) {
  // Met again (the next micro-batch) before its reduction started: grads() handed backward the
  // same buffer, which now holds both micro-batches' sum.
  if (std::find(bucket_.begin(), bucket_.end(), &u) != bucket_.end()) return;
  land(u);  // its previous micro-batch's reduction must be taken before this one
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
    // The first reduction of a step writes the shard's gradient straight into the state's device
    // accumulator; later ones (accumulation) and offloaded ones land in a buffer first.
    Tensor out = state_->direct_grad(u->index);
    if (!out.defined()) out = u->reduced = Tensor::empty({u->shard.shard}, DType::F32, options_.device);
    outs.push_back(out);
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
  // Whole on every rank: summed in place, then handed to the state unless it is the state's own.
  u.reducing = std::make_shared<Work>(comm_.size() > 1 ? comm_.all_reduce(u.full_grad, ReduceOp::Sum) : Work());
  if (!u.in_place) u.reduced = u.full_grad;
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
  if (got.defined()) state_->accumulate(u.index, got);
}

StepResult ZeroStore::step(const ops::AdamWStep& adam, double clip_norm, const std::function<void()>& norm_known) {
  await_steps();  // a step without a pass in between (each pass awaits the units it uses)
  // Whole gradients still accumulated (stages 0-1, unsharded units) are reduced now, all at once.
  for (auto& u : units_) {
    if (!u->full_grad.defined()) continue;
    if (u->shard.world == 1)
      reduce_whole(*u);
    else
      enqueue_reduce(*u);  // stage 1
  }
  flush_bucket();
  for (auto& u : units_) land(*u);
  in_flight_.clear();
  final_backward_ = false;
  if (std::exchange(norms_queued_, false)) {  // the early norms (optimizer stream) come first
    Event norms;
    norms.record(optimizer_stream_);
    norms.wait_on(current_stream(options_.device.index));
  }
  // Squared norms: [0] of sharded gradients (summed over the ranks), [1] of unsharded ones
  // (equal on every rank: counted once).
  Tensor norm_sq = state_->grad_norm_sq();  // on the communicator's device
  if (options_.stage >= 1 && comm_.size() > 1) comm_.all_reduce(norm_sq.flat_slice(0, 1), ReduceOp::Sum).wait();
  recording_ = false;  // the first step's order is the one to prefetch by
  cursor_ = 0;
  StepResult result;
  const Tensor sums = norm_sq.to(Device::cpu());
  result.grad_norm = std::sqrt(static_cast<double>(sums.data_as<float>()[0]) + sums.data_as<float>()[1]);
  result.skipped = !std::isfinite(result.grad_norm);
  if (norm_known) norm_known();
  if (result.skipped) {
    state_->zero_grads();
    return result;
  }
  ops::AdamWStep clipped = adam;
  clipped.grad_scale =
      static_cast<float>(clip_norm > 0 ? std::min(1.0, clip_norm / (result.grad_norm + 1e-6)) : 1.0);
  if (overlap_)
    step_behind(clipped);
  else
    state_->step(clipped, *low_);
  if (options_.stage < 3) {
    for (auto& u : units_) {
      u->full = Tensor();
      gather(*u);
    }
  }
  return result;
}

}  // namespace tessera

namespace tessera {

// zero.overlap_step. Why AdamW overlaps what comes after the step and not the end of backward: the
// global-norm clip scales every gradient by a factor known only once the last gradient has landed
// (the tied embedding's, at the very end of backward), and AdamW is not linear in that factor, so
// a unit stepped before it is known would have to be undone (a copy of its state: 12 bytes per
// parameter) whenever the clip binds; speculating that it does not bind cannot be checked before
// the last unit either. Stepping after the norm keeps every update exactly what the sequential step
// computes (the same kernels on the same inputs; only when they run changes), with the clip on.
// The updates go on the optimizer stream in unit order - the order the next forward needs them -
// after the backward and the norm; the host returns at once, and each unit's next use (acquire,
// its gather, a checkpoint, the next step) waits for that unit's update alone, so the updates of
// later units run under the host's work between steps and the forward of the earlier ones. On the
// CPU nothing runs behind the host: each unit's update is made when the unit is next used, which
// tests that every use waits for it.
void ZeroStore::take_norm(Unit& u) {
  if (!optimizer_stream_) {
    state_->take_norm(u.index);
    return;
  }
  Event done;  // the unit's backward, queued on the compute stream
  done.record(current_stream(options_.device.index));
  done.wait_on(optimizer_stream_);
  StreamGuard on_optimizer(options_.device.index, optimizer_stream_);
  state_->take_norm(u.index);
  norms_queued_ = true;
}

double ZeroStore::take_behind_seconds() {
  if (!std::exchange(behind_timed_, false)) return 0;
  behind_end_.synchronize();
  return elapsed_ms(behind_start_, behind_end_) / 1e3;
}

void ZeroStore::step_behind(const ops::AdamWStep& clipped) {
  state_->zero_grads();  // bookkeeping only: the next step's first gradient overwrites the accumulators
  pending_adam_ = clipped;
  if (optimizer_stream_) {
    const Stream compute = current_stream(options_.device.index);
    Event backward_done;
    backward_done.record(compute);
    backward_done.wait_on(optimizer_stream_);
    behind_start_.record(optimizer_stream_);
    StreamGuard on_optimizer(options_.device.index, optimizer_stream_);
    // The persistent group first: every unit's next use waits for it.
    std::vector<Unit*> order;
    if (persistent_) order.push_back(persistent_);
    for (auto& u : units_)
      if (u.get() != persistent_) order.push_back(u.get());
    for (Unit* u : order) {
      state_->step_unit(u->index, update_of(*u, clipped), *low_);
      u->stepped.record(optimizer_stream_);
    }
    behind_end_.record(optimizer_stream_);
    behind_timed_ = true;
  }
  for (auto& u : units_) u->step_pending = true;
}

}  // namespace tessera
