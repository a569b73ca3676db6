// YAML -> JSON, for mappings that carry another format's keys (model.init holds config.json keys).
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

namespace tessera::config {

// Scalars become integers, numbers, booleans or null where they read as such, strings otherwise.
nlohmann::json yaml_to_json(const YAML::Node& node);

}  // namespace tessera::config
