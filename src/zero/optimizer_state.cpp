#include "zero/optimizer_state.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

void OptimizerState::step_unit(size_t unit, const ops::AdamWStep&, WorkingCopy&) {
  fail("OptimizerState: unit {} cannot be stepped alone here (optimizer offload steps all units in one pass)", unit);
}

void OptimizerState::take_norm(size_t unit) {
  fail("OptimizerState: unit {}'s gradient norm cannot be taken alone here (optimizer offload)", unit);
}

offload::HomeLayout state_layout(const std::vector<UnitShard>& units) {
  offload::HomeLayout layout{DType::F32, 3, {}};
  for (const UnitShard& u : units) layout.lengths.push_back(u.size);
  return layout;
}

void adamw_ranges(const UnitShard& unit, int64_t first, const ops::AdamWStep& adam, const UnitState& state,
                  const Tensor& grad, const Tensor& low) {
  // The ranges tile the shard from its start, so their parts in [first, last) tile the piece from
  // its start too; what follows them is padding.
  const int64_t last = first + state.master.numel();
  std::vector<ops::AdamWSpan> spans;
  for (const OwnedRange& r : unit.ranges) {
    const int64_t lo = std::max(r.at, first), hi = std::min(r.at + r.end - r.begin, last);
    if (lo < hi) spans.push_back({lo - first, hi - first, r.param->decays});
  }
  ops::adamw_spans(state.master, grad, state.m, state.v, adam, low, spans);
}

}  // namespace tessera
