// A home in a swap file (zero.offload_optimizer or zero.offload_params: nvme). A region is cut
// into pieces of P elements (P a whole number of 4096-byte pages per part), and a piece holds
// its elements of every part one after another ([part 0][part 1]...), each part rounded up to
// 4096 bytes, so a piece is one contiguous read or write of at most one pool buffer.
#include <algorithm>
#include <deque>

#include "core/error.h"
#include "core/stream.h"
#include "offload/home.h"
#include "offload/piece_stream.h"

namespace tessera::offload {

namespace {

class NvmeHome : public Home {
 public:
  NvmeHome(const HomeLayout& layout, const NvmeSwap& swap, const std::string& what, int rank)
      : layout_(layout), item_(static_cast<int64_t>(dtype_size(layout.dtype))), ahead_(std::max(1, swap.units_in_flight)) {
    TS_CHECK(NvmeFile::kAlignment % item_ == 0, "swap: {} elements do not tile a page", dtype_name(layout.dtype));
    // The budget as units_in_flight + 2 buffers, each a whole number of pages per part.
    const int buffers = ahead_ + 2;
    const int64_t part_pages = std::max<int64_t>(swap.pinned_bytes / buffers / (layout.parts * NvmeFile::kAlignment), 1);
    piece_ = part_pages * NvmeFile::kAlignment / item_;
    std::vector<int64_t> region_bytes;
    int64_t total = 0;
    for (int64_t n : layout.lengths) {
      const int64_t full = n / piece_, rest = n % piece_;
      region_bytes.push_back(full * piece_bytes(piece_) + (rest > 0 ? piece_bytes(rest) : 0));
      total += region_bytes.back();
    }
    pieces_ = std::make_unique<PieceStream>(open_swap_file(swap, what, rank, total), region_bytes, piece_bytes(piece_),
                                            buffers);
  }

  void stream(const std::vector<size_t>& regions, bool write, const PieceFn& fn) override {
    std::vector<std::pair<size_t, int64_t>> order;  // (region, piece)
    for (size_t r : regions)
      for (int64_t k = 0; k < pieces_->pieces(r); ++k) order.emplace_back(r, k);
    for (size_t i = 0; i < order.size(); ++i) {
      for (size_t j = i; j < std::min(order.size(), i + 1 + ahead_); ++j)
        pieces_->read_ahead(order[j].first, order[j].second, 1, /*keep_free=*/0);
      const auto [region, piece] = order[i];
      PinnedPool::Buffer buffer = pieces_->fetch(region, piece);
      const int64_t n = elements(region, piece);
      std::vector<Tensor> parts;
      for (int g = 0; g < layout_.parts; ++g) parts.push_back(part(buffer, g, n));
      fn(region, piece * piece_, parts);
      if (write) pieces_->write(region, piece, std::move(buffer));
    }
  }

  void upload(size_t region, const Tensor& dst) override {
    TS_CHECK(layout_.parts == 1, "swap: upload() moves homes of one part");
    const Stream stream = dst.is_cuda() ? current_stream(dst.device().index) : nullptr;
    for (int64_t k = 0; k < pieces_->pieces(region); ++k) {
      PinnedPool::Buffer buffer = pieces_->fetch(region, k);
      // The rest of the region comes off the disk while this piece goes up; one buffer stays
      // free for a fetch nobody foresaw (the kept tensors' group, an evaluation).
      pieces_->read_ahead(region, k + 1, pieces_->pieces(region), /*keep_free=*/1);
      const int64_t n = elements(region, k);
      copy_bytes(dst.flat_slice(k * piece_, n), part(buffer, 0, n), /*async=*/true);
      pieces_->hold(std::move(buffer), stream);
    }
  }

  void store(size_t region, const Tensor& src) override {
    TS_CHECK(layout_.parts == 1, "swap: store() moves homes of one part");
    for (int64_t k = 0; k < pieces_->pieces(region); ++k) {
      PinnedPool::Buffer buffer = pieces_->take();
      const int64_t n = elements(region, k);
      copy_bytes(part(buffer, 0, n), src.flat_slice(k * piece_, n));  // from a device: waits for it
      pieces_->write(region, k, std::move(buffer));
    }
  }

  Tensor resident(size_t) override { return Tensor(); }

  void read_ahead(size_t region) override {
    pieces_->read_ahead(region, 0, pieces_->pieces(region), /*keep_free=*/1);
  }

 private:
  int64_t part_bytes(int64_t n) const { return NvmeFile::aligned(n * item_); }
  int64_t piece_bytes(int64_t n) const { return layout_.parts * part_bytes(n); }
  int64_t elements(size_t region, int64_t piece) const {
    return std::min(piece_, layout_.lengths.at(region) - piece * piece_);
  }
  // Part g of a buffer holding a piece of n elements.
  Tensor part(const PinnedPool::Buffer& buffer, int g, int64_t n) const {
    return Tensor::wrap(static_cast<char*>(buffer.data()) + g * part_bytes(n), {n}, layout_.dtype, Device::cpu());
  }

  HomeLayout layout_;
  int64_t item_;
  int ahead_;
  int64_t piece_ = 0;  // elements per piece
  std::unique_ptr<PieceStream> pieces_;
};

}  // namespace

std::unique_ptr<Home> make_nvme_home(const HomeLayout& layout, const NvmeSwap& swap, const std::string& what, int rank) {
  return std::make_unique<NvmeHome>(layout, swap, what, rank);
}

}  // namespace tessera::offload
