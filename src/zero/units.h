// ZeRO units: the parameter groups gathered and released together, each one flat buffer split
// evenly over the ranks (ShardLayout). Units: the embedding (with lm_head when tied), each layer,
// the head (final norm, and lm_head unless tied).
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/model_config.h"
#include "model/param_source.h"

namespace tessera {

struct UnitParam {
  std::string name;  // HF name
  Shape shape;
  int64_t offset = 0;  // in the unit's flat buffer
  int64_t numel() const { return shape_numel(shape); }
  bool decays() const { return shape.size() >= 2; }  // weight decay on matrices, not norms or biases
};

struct UnitLayout {
  UnitId id;
  std::vector<UnitParam> params;
  int64_t numel = 0;
  int64_t model_offset = 0;  // where the unit starts in the whole model (fixes its random init)
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

// Position of a unit in model_units().
size_t unit_index(const ModelConfig& config, UnitId id);

}  // namespace tessera
