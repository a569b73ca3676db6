#include "zero/working_copy.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

namespace {

constexpr int kStagingBuffers = 2;

size_t largest_bytes(const std::vector<int64_t>& sizes, DType dtype) {
  int64_t most = 1;
  for (int64_t n : sizes) most = std::max(most, n);
  return static_cast<size_t>(offload::NvmeFile::aligned(most * static_cast<int64_t>(dtype_size(dtype))));
}

}  // namespace

WorkingCopy::WorkingCopy(const std::vector<int64_t>& shard_sizes, DType dtype, Device device, Home home,
                         const NvmeSwap& swap, int rank)
    : dtype_(dtype), device_(device), home_kind_(home), sizes_(shard_sizes), uploaded_(shard_sizes.size()),
      staging_(largest_bytes(shard_sizes, dtype), kStagingBuffers), fetch_ring_(largest_bytes(shard_sizes, dtype), 2) {
  if (home == Home::nvme) {
    int64_t offset = 0;
    for (int64_t n : shard_sizes) {
      offsets_.push_back(offset);
      offset += offload::NvmeFile::aligned(n * static_cast<int64_t>(dtype_size(dtype)));
    }
    file_ = open_swap_file(swap, "params", rank, offset);
    return;
  }
  for (int64_t n : shard_sizes)
    home_.push_back(home == Home::host ? Tensor::empty_pinned({n}, dtype) : Tensor::empty({n}, dtype, device));
}

WorkingCopy::~WorkingCopy() {
  for (int64_t t : writes_) file_->wait(t);
}

Stream WorkingCopy::stream() const { return device_.is_cuda() ? current_stream(device_.index) : nullptr; }

Tensor WorkingCopy::write_slot(int64_t n) {
  if (writes_.size() == kStagingBuffers) {  // the buffer next() hands out is the oldest write's
    file_->wait(writes_.front());
    writes_.pop_front();
  }
  return staging_.next(n, dtype_);
}

Tensor WorkingCopy::target(size_t unit, bool host) {
  TS_CHECK(!pending_.defined(), "WorkingCopy: target() twice without commit()");
  const int64_t n = sizes_.at(unit);
  if (home_kind_ != Home::nvme && host == (home_kind_ == Home::host)) {
    if (host) uploaded_[unit].synchronize();  // a copy to the device may still be reading it
    return home_[unit];
  }
  pending_staged_ = host;
  if (!host) pending_ = Tensor::empty({n}, dtype_, device_);
  else pending_ = home_kind_ == Home::nvme ? write_slot(n) : staging_.next(n, dtype_);
  return pending_;
}

void WorkingCopy::commit(size_t unit) {
  if (!pending_.defined()) return;
  if (home_kind_ != Home::nvme) {
    copy_bytes(home_.at(unit), pending_, /*async=*/pending_staged_);  // device -> host waits
    if (pending_staged_) staging_.used_on(stream());
  } else {
    Tensor slot = pending_;
    if (!pending_staged_) copy_bytes(slot = write_slot(pending_.numel()), pending_);
    writes_.push_back(file_->write(offsets_.at(unit), slot.data(),
                                   offload::NvmeFile::aligned(static_cast<int64_t>(slot.nbytes()))));
  }
  pending_ = Tensor();
}

Tensor WorkingCopy::on_device(size_t unit) {
  if (home_kind_ == Home::device) return home_.at(unit);
  Tensor source;
  if (home_kind_ == Home::host) {
    source = home_.at(unit);
  } else {
    for (int64_t t : writes_) file_->wait(t);  // a read must not pass a write of the same region
    writes_.clear();
    source = fetch_ring_.next(sizes_.at(unit), dtype_);
    file_->wait(file_->read(offsets_.at(unit), source.data(),
                            offload::NvmeFile::aligned(static_cast<int64_t>(source.nbytes()))));
  }
  Tensor out = Tensor::empty({source.numel()}, dtype_, device_);
  copy_bytes(out, source, /*async=*/true);
  if (Stream s = stream()) {
    if (home_kind_ == Home::host) uploaded_[unit].record(s);
    else fetch_ring_.used_on(s);
  }
  return out;
}

}  // namespace tessera
