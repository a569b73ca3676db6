#include "offload/piece_stream.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace tessera::offload {

PieceStream::PieceStream(std::unique_ptr<NvmeFile> file, const std::vector<int64_t>& region_bytes,
                         int64_t piece_bytes, int buffers)
    : pool_(std::make_unique<PinnedPool>(piece_bytes, buffers)), file_(std::move(file)), piece_(piece_bytes) {
  TS_CHECK(piece_ > 0 && piece_ % NvmeFile::kAlignment == 0, "swap pieces of {} bytes: expected a positive multiple of {}",
           piece_, NvmeFile::kAlignment);
  int64_t offset = 0;
  for (int64_t bytes : region_bytes) {
    offsets_.push_back(offset);
    sizes_.push_back(bytes);
    offset += bytes;
  }
}

PieceStream::~PieceStream() {
  for (const Upload& u : uploads_) u.done.synchronize();
  uploads_.clear();
  file_.reset();  // waits for the transfers in flight before their buffers go back
}

int64_t PieceStream::pieces(size_t region) const { return (sizes_.at(region) + piece_ - 1) / piece_; }

int64_t PieceStream::bytes(size_t region, int64_t piece) const {
  return std::min(piece_, sizes_.at(region) - piece * piece_);
}

NvmeFile::Ticket PieceStream::start(const Transfer& t, bool write) {
  const int64_t offset = offsets_.at(t.region) + t.piece * piece_, n = bytes(t.region, t.piece);
  return write ? file_->write(offset, t.buffer.data(), n) : file_->read(offset, t.buffer.data(), n);
}

void PieceStream::read_ahead(size_t region, int64_t first, int64_t count, int keep_free) {
  reclaim();
  const int64_t last = std::min(pieces(region), first + count);
  for (int64_t piece = first; piece < last && pool_->available() > keep_free; ++piece) {
    if (find_read(region, piece) != reads_.end()) continue;
    settle(writes_, region);
    Transfer t{region, piece, pool_->acquire()};
    t.ticket = start(t, /*write=*/false);
    reads_.push_back(std::move(t));
  }
}

PinnedPool::Buffer PieceStream::fetch(size_t region, int64_t piece) {
  auto it = find_read(region, piece);
  if (it == reads_.end()) {
    settle(writes_, region);  // a read must not pass a write of the same region
    Transfer t{region, piece, take()};
    t.ticket = start(t, /*write=*/false);
    reads_.push_back(std::move(t));
    it = std::prev(reads_.end());
  }
  Transfer t = std::move(*it);
  reads_.erase(it);
  file_->wait(t.ticket);
  return std::move(t.buffer);
}

void PieceStream::write(size_t region, int64_t piece, PinnedPool::Buffer buffer) {
  settle(reads_, region);  // what they bring is about to be stale
  Transfer t{region, piece, std::move(buffer)};
  t.ticket = start(t, /*write=*/true);
  writes_.push_back(std::move(t));
}

PinnedPool::Buffer PieceStream::take() {
  reclaim();
  while (pool_->available() == 0) {
    if (!uploads_.empty()) {
      uploads_.front().done.synchronize();
      uploads_.pop_front();
    } else {
      // A write behind, else a read ahead that is not needed yet: it is read again when it is.
      std::deque<Transfer>& oldest = writes_.empty() ? reads_ : writes_;
      TS_CHECK(!oldest.empty(), "swap: every staging buffer is on loan with no transfer to wait for");
      file_->wait(oldest.front().ticket);
      oldest.pop_front();
    }
  }
  return pool_->acquire();
}

void PieceStream::hold(PinnedPool::Buffer buffer, Stream stream) {
  if (!stream) return;  // a host copy: done, the buffer goes back now
  uploads_.push_back({std::move(buffer), Event()});
  uploads_.back().done.record(stream);
}

void PieceStream::reclaim() {
  while (!uploads_.empty() && uploads_.front().done.ready()) uploads_.pop_front();
  while (!writes_.empty() && file_->done(writes_.front().ticket)) {
    file_->wait(writes_.front().ticket);  // returns at once; reports a failed write
    writes_.pop_front();
  }
}

std::deque<PieceStream::Transfer>::iterator PieceStream::find_read(size_t region, int64_t piece) {
  return std::find_if(reads_.begin(), reads_.end(),
                      [&](const Transfer& t) { return t.region == region && t.piece == piece; });
}

void PieceStream::settle(std::deque<Transfer>& transfers, size_t region) {
  for (auto it = transfers.begin(); it != transfers.end();) {
    if (it->region != region) {
      ++it;
      continue;
    }
    file_->wait(it->ticket);
    it = transfers.erase(it);
  }
}

}  // namespace tessera::offload
