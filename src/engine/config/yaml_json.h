// YAML -> JSON, for mappings that carry another format's keys (model.init holds config.json keys).
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

#include "engine/config/config_io.h"

namespace tessera::config {

// Scalars become integers, numbers, booleans or null where they read as such, strings otherwise.
// Text that is not valid UTF-8 (JSON cannot hold it) is an Error naming the dotted key under
// `path`, located through `source` when given.
nlohmann::json yaml_to_json(const YAML::Node& node, const std::string& path = "", const Source* source = nullptr);

}  // namespace tessera::config
