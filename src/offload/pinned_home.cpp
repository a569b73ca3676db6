// A home resident in pinned host memory (zero.offload_optimizer or zero.offload_params: cpu).
#include <cstring>

#include "core/stream.h"
#include "offload/home.h"

namespace tessera::offload {

namespace {

class PinnedHome : public Home {
 public:
  explicit PinnedHome(const HomeLayout& layout) : uploaded_(layout.lengths.size()) {
    for (int64_t n : layout.lengths) {
      std::vector<Tensor> parts;
      for (int g = 0; g < layout.parts; ++g) {
        parts.push_back(Tensor::empty_pinned({n}, layout.dtype));
        std::memset(parts.back().data(), 0, parts.back().nbytes());
      }
      regions_.push_back(std::move(parts));
    }
  }

  ~PinnedHome() override {
    for (const Event& e : uploaded_) e.synchronize();
  }

  void stream(const std::vector<size_t>& regions, bool, const PieceFn& fn) override {
    for (size_t r : regions) fn(r, 0, regions_.at(r));
  }

  void upload(size_t region, const Tensor& dst) override {
    copy_bytes(dst, regions_.at(region)[0], /*async=*/true);
    if (dst.is_cuda()) uploaded_[region].record(current_stream(dst.device().index));
  }

  void store(size_t region, const Tensor& src) override { copy_bytes(resident(region), src); }

  Tensor resident(size_t region) override {
    uploaded_.at(region).synchronize();  // a copy to the device may still be reading it
    return regions_[region][0];
  }

  void read_ahead(size_t) override {}

 private:
  std::vector<std::vector<Tensor>> regions_;
  std::vector<Event> uploaded_;  // per region, the last copy to the device
};

}  // namespace

std::unique_ptr<Home> make_pinned_home(const HomeLayout& layout) { return std::make_unique<PinnedHome>(layout); }

}  // namespace tessera::offload
