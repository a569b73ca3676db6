#include "engine/config/yaml_json.h"

#include <charconv>
#include <cstdlib>

#include "core/error.h"
#include "io/tokenizer/utf8.h"

namespace tessera::config {

namespace {

// nlohmann's dump() throws on invalid UTF-8 deep inside later code; refuse it here, by key.
const std::string& checked_text(const YAML::Node& node, const std::string& path, const Source* source) {
  const std::string& s = node.Scalar();
  if (const size_t bad = tok::find_invalid_utf8(s); bad != std::string::npos)
    fail("{}: {}: not valid UTF-8 (byte {} of \"{}\")", source ? source->where(path, node) : "config", path, bad,
         tok::utf8_lossy(s.substr(0, 40)));
  return s;
}

nlohmann::json scalar_to_json(const YAML::Node& node, const std::string& path, const Source* source) {
  const std::string& s = checked_text(node, path, source);
  if (node.Tag() == "!") return s;  // quoted: always a string
  int64_t i = 0;
  if (auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i); ec == std::errc() && end == s.data() + s.size())
    return i;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end == s.c_str() + s.size()) return d;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  if (s == "null" || s == "~") return nullptr;
  return s;
}

}  // namespace

nlohmann::json yaml_to_json(const YAML::Node& node, const std::string& path, const Source* source) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          fail("{}: {}: keys must be plain names", source ? source->where(path, kv.first) : "config", path);
        const std::string& key = checked_text(kv.first, path, source);
        out[key] = yaml_to_json(kv.second, path.empty() ? key : path + "." + key, source);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (size_t i = 0; i < node.size(); ++i)
        out.push_back(yaml_to_json(node[i], path + "[" + std::to_string(i) + "]", source));
      return out;
    }
    case YAML::NodeType::Scalar: return scalar_to_json(node, path, source);
    default: return nullptr;
  }
}

}  // namespace tessera::config
