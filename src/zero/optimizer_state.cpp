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
  const int64_t last = first + state.master.numel();
  for (const OwnedRange& r : unit.ranges) {
    const int64_t lo = std::max(r.at, first), hi = std::min(r.at + r.end - r.begin, last);
    if (lo >= hi) continue;
    ops::AdamWStep s = adam;
    if (!r.param->decays) s.weight_decay = 0.0f;
    const int64_t at = lo - first, n = hi - lo;
    ops::adamw(state.master.flat_slice(at, n), grad.flat_slice(at, n), state.m.flat_slice(at, n),
               state.v.flat_slice(at, n), s, low.flat_slice(at, n));
  }
  const int64_t pad = std::max(unit.owned(), first);
  if (pad < last) ops::fill(low.flat_slice(pad - first, last - pad), 0.0f);
}

}  // namespace tessera
