// Master weights and moments resident in pinned host memory (zero.offload_optimizer.device: cpu).
#include "zero/shard_home.h"

namespace tessera {

namespace {

class PinnedHome : public ShardHome {
 public:
  explicit PinnedHome(const std::vector<UnitShard>& units) {
    for (const UnitShard& u : units) {
      UnitState s;
      for (Tensor* t : {&s.master, &s.m, &s.v}) {
        *t = Tensor::empty_pinned({u.size}, DType::F32);
        ops::fill(*t, 0.0f);
      }
      states_.push_back(std::move(s));
    }
  }

  void stream(const std::vector<size_t>& order, bool, const StateVisitor& fn) override {
    for (size_t unit : order) fn(unit, states_.at(unit), 0);
  }

 private:
  std::vector<UnitState> states_;
};

}  // namespace

std::unique_ptr<ShardHome> make_pinned_home(const std::vector<UnitShard>& units) {
  return std::make_unique<PinnedHome>(units);
}

}  // namespace tessera
