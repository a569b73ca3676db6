// Regions of a swap file moved in pieces through a fixed pool of pinned buffers: the one engine
// behind every swap-file home (optimizer state and working copies alike). A region is split into
// pieces of piece_bytes (the last may be shorter); reads may start ahead of use, writes are left
// behind, and a buffer that an asynchronous copy to the GPU still reads is held until that copy is
// done. The pool is the only pinned memory used, however large the regions.
//
// Ordering: a read never passes a write of the same region (it waits for it), and a write makes
// the region's reads in flight stale (they are waited out and dropped).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/stream.h"
#include "offload/nvme_file.h"
#include "offload/pinned_pool.h"

namespace tessera::offload {

class PieceStream {
 public:
  // Regions of region_bytes[i] (multiples of 4096) laid out one after another in `file`;
  // `buffers` pool buffers of at least piece_bytes (a multiple of 4096) each.
  PieceStream(std::unique_ptr<NvmeFile> file, const std::vector<int64_t>& region_bytes, int64_t piece_bytes,
              int buffers);
  ~PieceStream();  // waits for every transfer and copy in flight

  int64_t piece_bytes() const { return piece_; }
  int64_t pieces(size_t region) const;
  int64_t bytes(size_t region, int64_t piece) const;  // of that piece
  int spare() const { return pool_->available(); }

  // Starts reading pieces [first, first + count) of `region` that are not in flight yet, while
  // more than `keep_free` buffers are free (never waits for the disk).
  void read_ahead(size_t region, int64_t first, int64_t count, int keep_free);
  // The piece's data in a buffer: from a read in flight (waited for) or a fresh one.
  PinnedPool::Buffer fetch(size_t region, int64_t piece);
  // Writes `buffer` (filled by the caller) as the piece, behind: it returns to the pool when done.
  void write(size_t region, int64_t piece, PinnedPool::Buffer buffer);
  // A free buffer: waits for the oldest upload or write, else drops the oldest read ahead (read
  // again when it is needed).
  PinnedPool::Buffer take();
  // `buffer` is read by a copy queued on `stream` (nullptr: already done): it returns after that.
  void hold(PinnedPool::Buffer buffer, Stream stream);

 private:
  struct Transfer {
    size_t region;
    int64_t piece;
    PinnedPool::Buffer buffer;
    NvmeFile::Ticket ticket = 0;
  };
  struct Upload {
    PinnedPool::Buffer buffer;
    Event done;
  };

  NvmeFile::Ticket start(const Transfer& t, bool write);
  void reclaim();  // gives back the buffers of finished uploads and writes
  std::deque<Transfer>::iterator find_read(size_t region, int64_t piece);
  void settle(std::deque<Transfer>& transfers, size_t region);  // waits out and drops the region's

  // The pool outlives the buffers on loan below; the file, the transfers into them.
  std::unique_ptr<PinnedPool> pool_;
  std::unique_ptr<NvmeFile> file_;
  int64_t piece_;
  std::vector<int64_t> offsets_, sizes_;
  std::deque<Transfer> reads_, writes_;  // in flight, oldest first
  std::deque<Upload> uploads_;
};

}  // namespace tessera::offload
