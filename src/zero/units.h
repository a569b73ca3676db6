// ZeRO units: the parameter groups gathered and released together, each one flat buffer split
// evenly over the ranks (ShardLayout). Units: the embedding (with lm_head when tied), each layer,
// the head (final norm, and lm_head unless tied).
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/model_config.h"
#include "model/model_config_params.h"
#include "model/param_source.h"

namespace tessera {

// A parameter (what it is, its ParamSpec) and where it sits.
struct UnitParam : ParamSpec {
  int64_t offset = 0;        // in the unit's flat buffer (persistent ones: in the persistent group's)
  int64_t model_offset = 0;  // where it starts in the whole model (fixes its random init)
  int64_t numel() const { return shape_numel(shape); }
};

struct UnitLayout {
  UnitId id;
  std::vector<UnitParam> params;      // in the unit's flat buffer (sharded)
  std::vector<UnitParam> persistent;  // the unit's parameters kept whole on every rank (split_persistent)
  int64_t numel = 0;                  // of `params`
};

// In forward order: embed, layers 0..L-1, head.
std::vector<UnitLayout> model_units(const ModelConfig& config);

// The part [begin, end) of `param` that lies in one rank's shard of its unit, at shard position `at`.
struct OwnedRange {
  const UnitParam* param;
  int64_t begin, end, at;
};

// The ranges of rank `owner`'s shard of `layout`, in shard order (they tile [0, shard.owned(owner))).
std::vector<OwnedRange> owned_ranges(const UnitLayout& layout, const ShardLayout& shard, int owner);

// zero.persist_below: moves every parameter with fewer than `persist_below` elements out of its
// unit's flat buffer into one group kept whole on every rank, returned (its id is meaningless);
// each unit lists its own in `persistent`, at their offsets in the group.
UnitLayout split_persistent(std::vector<UnitLayout>& units, int64_t persist_below);

// Position of a unit in model_units().
size_t unit_index(const ModelConfig& config, UnitId id);

}  // namespace tessera
