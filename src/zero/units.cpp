#include "zero/units.h"

#include <algorithm>

#include "core/error.h"
#include "model/model_config_params.h"

namespace tessera {

size_t unit_index(const ModelConfig& config, UnitId id) {
  switch (id.kind) {
    case UnitId::Kind::Embed: return 0;
    case UnitId::Kind::Layer: return 1 + static_cast<size_t>(id.layer);
    case UnitId::Kind::Head: return 1 + static_cast<size_t>(config.num_hidden_layers);
  }
  return 0;
}

std::vector<UnitLayout> model_units(const ModelConfig& config, const std::vector<ParamSpec>& params,
                                    DType frozen_dtype) {
  std::vector<UnitLayout> units(config.num_hidden_layers + 2);
  units[0].id = UnitId::embed();
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) units[1 + l].id = UnitId::layer_unit(l);
  units.back().id = UnitId::head();
  int64_t model_offset = 0;
  for (const ParamSpec& spec : params) {
    UnitId id = UnitId::head();
    if (spec.name == "model.embed_tokens.weight") {
      id = UnitId::embed();
    } else if (spec.name.starts_with("model.layers.")) {
      id = UnitId::layer_unit(std::stoll(spec.name.substr(13)));
    }
    UnitLayout& unit = units.at(unit_index(config, id));
    const int64_t numel = shape_numel(spec.shape);
    if (spec.trainable) {
      unit.params.push_back({spec, unit.numel, model_offset});
      unit.numel += numel;
    } else {
      unit.frozen_bytes = (unit.frozen_bytes + kFrozenAlign - 1) / kFrozenAlign * kFrozenAlign;
      unit.frozen.push_back({spec, unit.frozen_bytes, model_offset});
      unit.frozen_bytes += spec.quant ? packed_bytes(*spec.quant, spec.shape)
                                      : numel * static_cast<int64_t>(dtype_size(frozen_dtype));
    }
    model_offset += numel;
  }
  return units;
}

std::vector<OwnedRange> owned_ranges(const UnitLayout& layout, const ShardLayout& shard, int owner) {
  const int64_t begin = shard.begin(owner), end = shard.end(owner);
  std::vector<OwnedRange> out;
  for (const UnitParam& p : layout.params) {
    const int64_t lo = std::max(p.offset, begin), hi = std::min(p.offset + p.numel(), end);
    if (lo < hi) out.push_back({&p, lo - p.offset, hi - p.offset, lo - begin});
  }
  return out;
}

UnitLayout split_persistent(std::vector<UnitLayout>& units, int64_t persist_below) {
  UnitLayout group;
  for (UnitLayout& unit : units) {
    std::vector<UnitParam> sharded;
    unit.numel = 0;
    for (UnitParam p : unit.params) {
      int64_t& end = p.numel() < persist_below ? group.numel : unit.numel;
      p.offset = end;
      end += p.numel();
      if (p.numel() < persist_below) {
        unit.persistent.push_back(p);
        group.params.push_back(p);
      } else {
        sharded.push_back(p);
      }
    }
    unit.params = std::move(sharded);
  }
  return group;
}

}  // namespace tessera
