#include "engine/model_weights.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "quant/packed.h"

namespace tessera {

namespace fs = std::filesystem;

nlohmann::json quantization_config_json(const QuantTargets& t) {
  return {{"quant_method", kTesseraQuantMethod},
          {"scheme", std::string(quant_scheme_name(t.weights.scheme))},
          {"group_size", t.weights.group_size},
          {"symmetric", t.weights.symmetric},
          {"modules", t.modules()}};
}

QuantTargets parse_quantization_config(const nlohmann::json& j, const ModelConfig& config, const std::string& where) {
  TS_CHECK(j.is_object(), "{}: quantization_config must be an object", where);
  const auto field = [&](const char* key) -> const nlohmann::json& {
    TS_CHECK(j.contains(key), "{}: quantization_config has no '{}'", where, key);
    return j.at(key);
  };
  const nlohmann::json& method = field("quant_method");
  TS_CHECK(method.is_string() && method.get<std::string>() == kTesseraQuantMethod,
           "{}: quantization_config.quant_method {} is not Tessera's ('{}'): only Tessera's quantized checkpoints "
           "are read", where, method.dump(), kTesseraQuantMethod);
  const nlohmann::json &scheme = field("scheme"), &group = field("group_size"), &symmetric = field("symmetric"),
                       &modules = field("modules");
  TS_CHECK(scheme.is_string(), "{}: quantization_config.scheme must be a string", where);
  TS_CHECK(group.is_number_integer(), "{}: quantization_config.group_size must be an integer", where);
  TS_CHECK(symmetric.is_boolean(), "{}: quantization_config.symmetric must be true or false", where);
  TS_CHECK(modules.is_array() && std::all_of(modules.begin(), modules.end(), [](const auto& m) { return m.is_string(); }),
           "{}: quantization_config.modules must be a list of names", where);
  const QuantSpec spec{with_context(where + ": quantization_config.scheme",
                                    [&] { return parse_quant_scheme(scheme.get<std::string>()); }),
                       group.get<int64_t>(), symmetric.get<bool>()};
  return resolve_quant_targets(spec, modules.get<std::vector<std::string>>(), config, where + ": quantization_config");
}

namespace {

std::string part_name(const std::string& param, std::string_view part) { return param + "." + std::string(part); }

}  // namespace

ModelWeights ModelWeights::open(const std::string& folder, const ModelConfig& config) {
  ModelWeights w;
  w.folder_ = folder;
  const fs::path config_file = fs::is_directory(folder) ? fs::path(folder) / "config.json" : fs::path();
  if (!config_file.empty() && fs::exists(config_file)) {
    nlohmann::json j;
    try {
      std::ifstream in(config_file);
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON: {}", config_file.string(), e.what());
    }
    if (j.is_object() && j.contains("quantization_config"))
      w.quantization_ = parse_quantization_config(j["quantization_config"], config, config_file.string());
  }
  w.files_ = std::make_shared<const SafetensorsModel>(SafetensorsModel::open(folder));
  if (!w.quantization_) {
    validate_checkpoint(config, *w.files_);
    return w;
  }
  for (const ParamSpec& p : model_parameters(config)) {
    if (!w.quantization_->selects(p.name)) {
      TS_CHECK(w.files_->contains(p.name), "{}: the quantized checkpoint has no tensor {}", folder, p.name);
      TS_CHECK(w.files_->info(p.name).shape == p.shape, "{}: {} has shape {}, the config says {}", folder, p.name,
               shape_str(w.files_->info(p.name).shape), shape_str(p.shape));
      continue;
    }
    const QuantSpec spec = resolve_quant_spec(w.quantization_->weights, p.shape);
    for (const PackedPartSpec& part : packed_part_specs(spec, p.shape)) {
      const std::string name = part_name(p.name, part.name);
      TS_CHECK(w.files_->contains(name), "{}: the quantized checkpoint has no tensor {} ({} of {})", folder, name,
               quant_scheme_name(spec.scheme), p.name);
      const TensorInfo& info = w.files_->info(name);
      TS_CHECK(info.dtype == part.dtype && info.shape == part.shape, "{}: {} is {}{}, {} of {} {} needs {}{}", folder,
               name, dtype_name(info.dtype), shape_str(info.shape), quant_scheme_name(spec.scheme), p.name,
               shape_str(p.shape), dtype_name(part.dtype), shape_str(part.shape));
    }
  }
  return w;
}

PackedTensor ModelWeights::packed(const ParamSpec& param) const {
  TS_CHECK(quantization_ && quantization_->selects(param.name), "{}: {} is not quantized", folder_, param.name);
  PackedTensor packed;
  packed.spec = resolve_quant_spec(quantization_->weights, param.shape);
  packed.shape = param.shape;
  for (const PackedPartSpec& part : packed_part_specs(packed.spec, param.shape))
    packed.parts.push_back(files_->tensor(part_name(param.name, part.name)));
  return packed;
}

Tensor ModelWeights::tensor(const ParamSpec& param) const {
  if (quantization_ && quantization_->selects(param.name)) return quant::dequantize(packed(param), DType::F32);
  return files_->tensor(param.name);
}

}  // namespace tessera
