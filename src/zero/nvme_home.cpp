// Master weights and moments in a swap file (zero.offload_optimizer.device: nvme). Each unit's
// shard is three 4096-aligned regions (master, m, v); it streams through a PinnedPool in pieces
// that fit one buffer: the pieces ahead are read while fn works on the current one, and a piece
// fn changed is written back behind it, its buffer returning to the pool when the write is done.
#include <algorithm>
#include <deque>

#include "core/error.h"
#include "offload/pinned_pool.h"
#include "zero/nvme_swap.h"
#include "zero/shard_home.h"

namespace tessera {

namespace {

using offload::NvmeFile;
using offload::PinnedPool;

class NvmeHome : public ShardHome {
 public:
  NvmeHome(const std::vector<UnitShard>& units, const NvmeSwap& swap, int rank)
      : ahead_(std::max(1, swap.units_in_flight)),
        pool_(buffer_bytes(swap.pinned_bytes, ahead_ + 2), ahead_ + 2) {
    piece_ = pool_.buffer_bytes() / 3 / NvmeFile::kAlignment * NvmeFile::kAlignment / 4;
    TS_CHECK(piece_ > 0, "zero.offload_optimizer.pinned_buffer_mb is too small for NVMe staging");
    int64_t offset = 0;
    for (const UnitShard& u : units) {
      const int64_t region = NvmeFile::aligned(u.size * 4);
      regions_.push_back({offset, region, u.size});
      offset += 3 * region;
    }
    file_ = open_swap_file(swap, "optimizer", rank, offset);
  }

  void stream(const std::vector<size_t>& order, bool write, const StateVisitor& fn) override {
    std::vector<Piece> pieces;
    for (size_t unit : order)
      for (int64_t first = 0; first < regions_.at(unit).size; first += piece_)
        pieces.push_back({unit, first, std::min(piece_, regions_[unit].size - first)});
    std::deque<InFlight> reads, writes;
    size_t next = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      while (next < pieces.size() && reads.size() <= static_cast<size_t>(ahead_)) {
        while (pool_.available() == 0 && !writes.empty()) retire(writes);  // our writes hold the buffers
        reads.push_back(transfer(pieces[next++], pool_.acquire(), /*write=*/false));
      }
      InFlight current = std::move(reads.front());
      reads.pop_front();
      for (NvmeFile::Ticket t : current.tickets) file_->wait(t);
      const Piece& p = current.piece;
      fn(p.unit, {view(current.buffer, 0, p.n), view(current.buffer, 1, p.n), view(current.buffer, 2, p.n)}, p.first);
      if (write) writes.push_back(transfer(p, std::move(current.buffer), /*write=*/true));
    }
    while (!writes.empty()) retire(writes);
  }

 private:
  struct Region {
    int64_t offset, bytes, size;  // master at offset, m and v one and two regions on
  };
  struct Piece {
    size_t unit;
    int64_t first, n;
  };
  struct InFlight {
    Piece piece;
    PinnedPool::Buffer buffer;
    NvmeFile::Ticket tickets[3];
  };

  static int64_t buffer_bytes(int64_t budget, int count) {
    return std::max<int64_t>(budget / count / (3 * NvmeFile::kAlignment), 1) * 3 * NvmeFile::kAlignment;
  }

  // Part g (0 master, 1 m, 2 v) of a buffer, as n floats.
  Tensor view(const PinnedPool::Buffer& buffer, int g, int64_t n) const {
    return Tensor::wrap(static_cast<char*>(buffer.data()) + g * piece_ * 4, {n}, DType::F32, Device::cpu());
  }

  InFlight transfer(const Piece& p, PinnedPool::Buffer buffer, bool write) {
    InFlight f{p, std::move(buffer), {}};
    const Region& r = regions_[p.unit];
    const int64_t bytes = NvmeFile::aligned(p.n * 4);
    for (int g = 0; g < 3; ++g) {
      char* at = static_cast<char*>(f.buffer.data()) + g * piece_ * 4;
      const int64_t offset = r.offset + g * r.bytes + p.first * 4;
      f.tickets[g] = write ? file_->write(offset, at, bytes) : file_->read(offset, at, bytes);
    }
    return f;
  }

  void retire(std::deque<InFlight>& writes) {
    for (NvmeFile::Ticket t : writes.front().tickets) file_->wait(t);
    writes.pop_front();  // the buffer goes back to the pool
  }

  int ahead_;
  PinnedPool pool_;
  int64_t piece_ = 0;  // elements per piece: a third of a buffer, 4096-byte aligned
  std::vector<Region> regions_;
  std::unique_ptr<NvmeFile> file_;
};

}  // namespace

std::unique_ptr<ShardHome> make_nvme_home(const std::vector<UnitShard>& units, const NvmeSwap& swap, int rank) {
  return std::make_unique<NvmeHome>(units, swap, rank);
}

}  // namespace tessera
