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

std::vector<UnitLayout> model_units(const ModelConfig& config) {
  std::vector<UnitLayout> units(config.num_hidden_layers + 2);
  units[0].id = UnitId::embed();
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) units[1 + l].id = UnitId::layer_unit(l);
  units.back().id = UnitId::head();
  for (const ParamSpec& spec : model_parameters(config)) {
    UnitId id = UnitId::head();
    if (spec.name == "model.embed_tokens.weight") {
      id = UnitId::embed();
    } else if (spec.name.starts_with("model.layers.")) {
      id = UnitId::layer_unit(std::stoll(spec.name.substr(13)));
    }
    UnitLayout& unit = units[unit_index(config, id)];
    unit.params.push_back({spec, unit.numel});
    unit.numel += shape_numel(spec.shape);
  }
  int64_t offset = 0;
  for (UnitLayout& unit : units) {
    for (UnitParam& p : unit.params) p.model_offset = offset + p.offset;
    offset += unit.numel;
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
