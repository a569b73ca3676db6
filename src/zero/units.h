// ZeRO units: the parameter groups gathered and released together. Units: the embedding (with
// lm_head when tied), each layer, the head (final norm, and lm_head unless tied). A unit's
// trainable tensors are one flat compute-dtype buffer (with fp32 state and gradients), its frozen
// ones one byte buffer (the tensors in their storage dtype: no state, no gradient); each buffer is
// split evenly over the ranks (ShardLayout).
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
  int64_t offset = 0;        // elements into the unit's flat buffer (persistent ones: into the
                             // persistent group's); frozen ones: bytes into the unit's frozen buffer
  int64_t model_offset = 0;  // elements before it in the model's parameter list (fixes its random init)
  int64_t numel() const { return shape_numel(shape); }
};

struct UnitLayout {
  UnitId id;
  std::vector<UnitParam> params;      // trainable, in the unit's flat buffer (sharded)
  std::vector<UnitParam> persistent;  // trainable, kept whole on every rank (split_persistent)
  std::vector<UnitParam> frozen;      // frozen, in the unit's byte buffer
  int64_t numel = 0;                  // elements of `params`
  int64_t frozen_bytes = 0;           // of the frozen buffer
};

// Frozen tensors start at multiples of this many bytes of their buffer (vector loads, cuBLASLt).
constexpr int64_t kFrozenAlign = 256;

// The units of `params` (model_parameters(config), with any adapters after it), in forward order:
// embed, layers 0..L-1, head. Frozen tensors are stored as `frozen_dtype` (the compute dtype), or
// packed (ParamSpec.quant: packed_bytes of their scheme).
std::vector<UnitLayout> model_units(const ModelConfig& config, const std::vector<ParamSpec>& params,
                                    DType frozen_dtype);

// The part [begin, end) of `param` that lies in one rank's shard of its unit, at shard position `at`.
struct OwnedRange {
  const UnitParam* param;
  int64_t begin, end, at;
};

// The ranges of rank `owner`'s shard of `layout`, in shard order (they tile [0, shard.owned(owner))).
std::vector<OwnedRange> owned_ranges(const UnitLayout& layout, const ShardLayout& shard, int owner);

// zero.persist_below: moves every trainable parameter with fewer than `persist_below` elements out
// of its unit's flat buffer into one group kept whole on every rank, returned (its id is meaningless);
// each unit lists its own in `persistent`, at their offsets in the group.
UnitLayout split_persistent(std::vector<UnitLayout>& units, int64_t persist_below);

// Position of a unit in model_units().
size_t unit_index(const ModelConfig& config, UnitId id);

}  // namespace tessera
