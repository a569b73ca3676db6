#include "zero/working_copy.h"

#include <algorithm>

#include "core/error.h"
#include "core/stream.h"

namespace tessera {

namespace {

constexpr int kStagingBuffers = 2;

int64_t slot_bytes(const WorkingCopy::Slot& s) { return s.numel * static_cast<int64_t>(dtype_size(s.dtype)); }

// Of the slots that move through staging (on_host ones never do).
int64_t largest_bytes(const std::vector<WorkingCopy::Slot>& slots) {
  int64_t most = 1;
  for (const auto& s : slots)
    if (!s.on_host) most = std::max(most, slot_bytes(s));
  return most;
}

Tensor bytes_of(const Tensor& t) {
  return Tensor::wrap(t.data(), {static_cast<int64_t>(t.nbytes())}, DType::U8, t.device(), t.storage());
}

}  // namespace

WorkingCopy::WorkingCopy(std::vector<Slot> slots, Device device, Home home, const offload::NvmeSwap& swap, int rank)
    : slots_(std::move(slots)), device_(device), staging_(static_cast<size_t>(largest_bytes(slots_)), kStagingBuffers) {
  for (const Slot& s : slots_) on_host_.push_back(s.on_host ? Tensor::empty_pinned({s.numel}, s.dtype) : Tensor());
  if (home == Home::device) {
    for (const Slot& s : slots_) on_device_.push_back(s.on_host ? Tensor() : Tensor::empty({s.numel}, s.dtype, device));
    return;
  }
  offload::HomeLayout layout{DType::U8, 1, {}};
  for (const Slot& s : slots_) layout.lengths.push_back(s.on_host ? 0 : slot_bytes(s));
  home_ = home == Home::nvme ? offload::make_nvme_home(layout, swap, "params", rank) : offload::make_pinned_home(layout);
}

WorkingCopy::~WorkingCopy() { staging_.drain(); }

Stream WorkingCopy::stream() const { return device_.is_cuda() ? current_stream(device_.index) : nullptr; }

Tensor WorkingCopy::typed(const Tensor& bytes, size_t slot) const {
  return Tensor::wrap(bytes.data(), {slots_[slot].numel}, slots_[slot].dtype, bytes.device(), bytes.storage());
}

Tensor WorkingCopy::target(size_t slot, bool host) {
  TS_CHECK(!pending_.defined(), "WorkingCopy: target() twice without commit()");
  const Slot& s = slots_.at(slot);
  if (s.on_host) {
    TS_CHECK(host, "WorkingCopy: slot {} lives in host memory and is written by the CPU", slot);
    return on_host_[slot];
  }
  if (!home_ && !host) return on_device_[slot];
  if (home_ && host) {
    const Tensor resident = home_->resident(slot);
    if (resident.defined()) return typed(resident, slot);
  }
  if (!host) {
    pending_ = Tensor::empty({s.numel}, s.dtype, device_);
  } else if (home_) {  // a swap file: the CPU writes to ordinary memory first
    if (!scratch_.defined()) scratch_ = Tensor::empty({largest_bytes(slots_)}, DType::U8);
    pending_ = typed(scratch_, slot);
  } else {
    pending_ = staging_.next(s.numel, s.dtype);
  }
  return pending_;
}

void WorkingCopy::commit(size_t slot) {
  if (!pending_.defined()) return;
  if (home_) {
    home_->store(slot, bytes_of(pending_));
  } else {
    copy_bytes(on_device_.at(slot), pending_, /*async=*/true);
    staging_.used_on(stream());
  }
  pending_ = Tensor();
}

Tensor WorkingCopy::on_device(size_t slot) {
  if (slots_.at(slot).on_host) return on_host_[slot];
  if (!home_) return on_device_.at(slot);
  const Slot& s = slots_.at(slot);
  Tensor out = Tensor::empty({s.numel}, s.dtype, device_);
  home_->upload(slot, bytes_of(out));
  return out;
}

void WorkingCopy::read_ahead(size_t slot) {
  if (home_ && !slots_.at(slot).on_host) home_->read_ahead(slot);
}

}  // namespace tessera
