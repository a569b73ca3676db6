#include "zero/working_copy.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace tessera {

namespace {

using offload::NvmeFile;
using offload::PinnedPool;

constexpr int kStagingBuffers = 2;

size_t largest_bytes(const std::vector<int64_t>& sizes, DType dtype) {
  int64_t most = 1;
  for (int64_t n : sizes) most = std::max(most, n);
  return static_cast<size_t>(NvmeFile::aligned(most * static_cast<int64_t>(dtype_size(dtype))));
}

// The swap's pinned budget as units_in_flight + 2 buffers, as the optimizer's swapper splits its own.
std::unique_ptr<PinnedPool> make_pool(const NvmeSwap& swap) {
  const int count = std::max(1, swap.units_in_flight) + 2;
  const int64_t bytes = std::max<int64_t>(swap.pinned_bytes / count / NvmeFile::kAlignment, 1) * NvmeFile::kAlignment;
  return std::make_unique<PinnedPool>(bytes, count);
}

}  // namespace

WorkingCopy::WorkingCopy(const std::vector<int64_t>& shard_sizes, DType dtype, Device device, Home home,
                         const NvmeSwap& swap, int rank)
    : dtype_(dtype), device_(device), home_kind_(home), sizes_(shard_sizes), uploaded_(shard_sizes.size()),
      staging_(largest_bytes(shard_sizes, dtype), kStagingBuffers) {
  if (home == Home::nvme) {
    pool_ = make_pool(swap);
    piece_ = pool_->buffer_bytes() / static_cast<int64_t>(dtype_size(dtype));
    int64_t offset = 0;
    for (int64_t n : shard_sizes) {
      offsets_.push_back(offset);
      offset += NvmeFile::aligned(n * static_cast<int64_t>(dtype_size(dtype)));
    }
    file_ = open_swap_file(swap, "params", rank, offset);
    return;
  }
  for (int64_t n : shard_sizes)
    home_.push_back(home == Home::host ? Tensor::empty_pinned({n}, dtype) : Tensor::empty({n}, dtype, device));
}

WorkingCopy::~WorkingCopy() {
  for (const Upload& u : uploads_) u.done.synchronize();
  file_.reset();  // waits for the transfers in flight before their buffers go back
}

Stream WorkingCopy::stream() const { return device_.is_cuda() ? current_stream(device_.index) : nullptr; }

Tensor WorkingCopy::target(size_t unit, bool host) {
  TS_CHECK(!pending_.defined(), "WorkingCopy: target() twice without commit()");
  const int64_t n = sizes_.at(unit);
  if (home_kind_ != Home::nvme && host == (home_kind_ == Home::host)) {
    if (host) uploaded_[unit].synchronize();  // a copy to the device may still be reading it
    return home_[unit];
  }
  pending_staged_ = host;
  if (!host) {
    pending_ = Tensor::empty({n}, dtype_, device_);
  } else if (home_kind_ == Home::nvme) {
    if (!scratch_.defined()) scratch_ = Tensor::empty({*std::max_element(sizes_.begin(), sizes_.end())}, dtype_);
    pending_ = scratch_.flat_slice(0, n);
  } else {
    pending_ = staging_.next(n, dtype_);
  }
  return pending_;
}

void WorkingCopy::commit(size_t unit) {
  if (!pending_.defined()) return;
  if (home_kind_ == Home::nvme) {
    write(unit, pending_);
  } else {
    copy_bytes(home_.at(unit), pending_, /*async=*/pending_staged_);  // device -> host waits
    if (pending_staged_) staging_.used_on(stream());
  }
  pending_ = Tensor();
}

Tensor WorkingCopy::on_device(size_t unit) {
  if (home_kind_ == Home::device) return home_.at(unit);
  const int64_t size = sizes_.at(unit);
  Tensor out = Tensor::empty({size}, dtype_, device_);
  if (home_kind_ == Home::host) {
    copy_bytes(out, home_.at(unit), /*async=*/true);
    if (Stream s = stream()) uploaded_[unit].record(s);
    return out;
  }
  for (int64_t first = 0; first < size; first += piece_) {
    auto it = find_read(unit, first);
    if (it == reads_.end()) {
      start_read(unit, first, take());
      it = std::prev(reads_.end());
    }
    Piece piece = std::move(*it);
    reads_.erase(it);
    file_->wait(piece.ticket);
    read_from(unit, first + piece_);  // the rest of the unit comes off the disk while this piece goes up
    const int64_t n = std::min(piece_, size - first);
    copy_bytes(out.flat_slice(first, n), view(piece.buffer, n), /*async=*/true);
    if (Stream s = stream()) {
      uploads_.push_back({std::move(piece.buffer), Event()});
      uploads_.back().done.record(s);
    }  // on the CPU the copy is done and the buffer goes back here
  }
  return out;
}

void WorkingCopy::read_ahead(size_t unit) {
  if (home_kind_ != Home::nvme) return;
  reclaim();
  read_from(unit, 0);
}

Tensor WorkingCopy::view(const PinnedPool::Buffer& buffer, int64_t n) const {
  return Tensor::wrap(buffer.data(), {n}, dtype_, Device::cpu());
}

NvmeFile::Ticket WorkingCopy::transfer(const Piece& piece, bool write) {
  const int64_t item = static_cast<int64_t>(dtype_size(dtype_)), n = std::min(piece_, sizes_.at(piece.unit) - piece.first);
  const int64_t offset = offsets_.at(piece.unit) + piece.first * item, bytes = NvmeFile::aligned(n * item);
  return write ? file_->write(offset, piece.buffer.data(), bytes) : file_->read(offset, piece.buffer.data(), bytes);
}

PinnedPool::Buffer WorkingCopy::take() {
  reclaim();
  while (pool_->available() == 0) {
    if (!uploads_.empty()) {
      uploads_.front().done.synchronize();
      uploads_.pop_front();
    } else {
      // A write behind, else a read ahead that is not needed yet: it is read again when it is.
      std::deque<Piece>& oldest = writes_.empty() ? reads_ : writes_;
      TS_CHECK(!oldest.empty(), "WorkingCopy: every staging buffer is on loan with no transfer to wait for");
      file_->wait(oldest.front().ticket);
      oldest.pop_front();
    }
  }
  return pool_->acquire();
}

void WorkingCopy::reclaim() {
  while (!uploads_.empty() && uploads_.front().done.ready()) uploads_.pop_front();
  while (!writes_.empty() && file_->done(writes_.front().ticket)) {
    file_->wait(writes_.front().ticket);  // returns at once; reports a failed write
    writes_.pop_front();
  }
}

void WorkingCopy::start_read(size_t unit, int64_t first, PinnedPool::Buffer buffer) {
  settle(writes_, unit);  // a read must not pass a write of the same region
  Piece piece{unit, first, std::move(buffer)};
  piece.ticket = transfer(piece, /*write=*/false);
  reads_.push_back(std::move(piece));
}

void WorkingCopy::read_from(size_t unit, int64_t first) {
  // One buffer stays free for a fetch nobody foresaw (the kept tensors' group, an evaluation).
  for (; first < sizes_.at(unit) && pool_->available() > 1; first += piece_)
    if (find_read(unit, first) == reads_.end()) start_read(unit, first, pool_->acquire());
}

std::deque<WorkingCopy::Piece>::iterator WorkingCopy::find_read(size_t unit, int64_t first) {
  return std::find_if(reads_.begin(), reads_.end(), [&](const Piece& p) { return p.unit == unit && p.first == first; });
}

void WorkingCopy::settle(std::deque<Piece>& pieces, size_t unit) {
  for (auto it = pieces.begin(); it != pieces.end();) {
    if (it->unit != unit) {
      ++it;
      continue;
    }
    file_->wait(it->ticket);
    it = pieces.erase(it);
  }
}

void WorkingCopy::write(size_t unit, const Tensor& slice) {
  settle(reads_, unit);  // what they bring is about to be stale
  for (int64_t first = 0; first < slice.numel(); first += piece_) {
    Piece piece{unit, first, take()};
    const int64_t n = std::min(piece_, slice.numel() - first);
    copy_bytes(view(piece.buffer, n), slice.flat_slice(first, n));  // from the device: waits for it
    piece.ticket = transfer(piece, /*write=*/true);
    writes_.push_back(std::move(piece));
  }
}

}  // namespace tessera
