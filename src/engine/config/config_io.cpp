#include "engine/config/config_io.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace tessera::config {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream in(path);
  for (std::string part; std::getline(in, part, '.');) parts.push_back(part);
  return parts;
}

// A YAML mapping that names a key twice is refused: yaml-cpp would silently keep the first.
void reject_duplicate_keys(const YAML::Node& node, const std::string& file) {
  if (node.IsSequence())
    for (const auto& item : node) reject_duplicate_keys(item, file);
  if (!node.IsMap()) return;
  std::map<std::string, YAML::Mark> seen;
  for (const auto& entry : node) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
    if (auto [it, fresh] = seen.emplace(key, entry.first.Mark()); !fresh && entry.first.IsScalar())
      fail("{}:{}: duplicate key '{}' (first given on line {})", file, entry.first.Mark().line + 1, key,
           it->second.line + 1);
    reject_duplicate_keys(entry.second, file);
  }
}

}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  // Suggest only what a typo could explain: at most a third of the word (and 1) edited.
  return best_distance <= std::max<size_t>(1, word.size() / 3) + 1 ? best : "";
}

std::string Source::where(const std::string& path, const YAML::Node& node) const {
  // The --set that sets this key, a section above it, or (a key it created) one below it.
  for (const auto& [prefix, assignment] : overrides)
    if (path == prefix || path.starts_with(prefix + ".") || prefix.starts_with(path + ".")) return assignment;
  std::string name = file.empty() ? "config" : file;
  if (node && !node.Mark().is_null()) return name + ":" + std::to_string(node.Mark().line + 1);
  return name;
}

YAML::Node load_yaml_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("{}: is a folder, expected a YAML config file", path);
  try {
    YAML::Node root = YAML::LoadFile(path);
    reject_duplicate_keys(root, path);
    return root;
  } catch (const YAML::BadFile&) {
    fail("{}: cannot open the config file", path);
  } catch (const YAML::ParserException& e) {
    fail("{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
}

void apply_override(YAML::Node& root, const std::string& assignment, Source& source) {
  const auto eq = assignment.find('=');
  TS_CHECK(eq != std::string::npos && eq > 0, "--set {}: expected key.path=value", assignment);
  const std::string path = assignment.substr(0, eq);
  const std::vector<std::string> keys = split_path(path);
  for (const auto& k : keys) TS_CHECK(!k.empty(), "--set {}: empty key in '{}'", assignment, path);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
    reject_duplicate_keys(value, "--set " + assignment);
  } catch (const YAML::ParserException& e) {
    fail("--set {}: invalid value: {}", assignment, e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  TS_CHECK(root.IsMap(), "--set {}: the config's top level is not a mapping", assignment);
  // yaml-cpp nodes are handles: walking with copies and assigning through them edits the tree.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node next = chain.back()[keys[i]];
    if (!next || next.IsNull()) next = YAML::Node(YAML::NodeType::Map);
    TS_CHECK(next.IsMap(), "--set {}: '{}' is a value, not a section", assignment, keys[i]);
    chain.back()[keys[i]] = next;
    chain.push_back(next);
  }
  chain.back()[keys.back()] = value;
  source.overrides[path] = "--set " + assignment;
}

void ConfigReader::operator()(const char* key, std::string& value, std::initializer_list<const char*> allowed) {
  YAML::Node child = lookup(key);
  if (!child) return;
  std::string text;
  read(child, join(key), text);
  std::vector<std::string> options(allowed.begin(), allowed.end());
  if (std::find(options.begin(), options.end(), text) == options.end()) {
    std::string list;
    for (const auto& o : options) list += (list.empty() ? "" : ", ") + o;
    fail_at(join(key), child, "expected one of " + list + ", got \"" + text + "\"");
  }
  value = text;
}

YAML::Node ConfigReader::lookup(const char* key) {
  known_.emplace_back(key);
  if (!node_ || !node_.IsMap()) return YAML::Node();
  const YAML::Node& map = node_;  // const access: an absent key must not be inserted
  return map[key];
}

void ConfigReader::reject_unknown_keys() const {
  if (!node_ || !node_.IsMap()) return;
  for (const auto& entry : node_) {
    const std::string key = entry.first.Scalar();
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    std::string message = "unknown key '" + join(key.c_str()) + "'";
    std::string suggestion = closest(key, known_);
    if (!suggestion.empty()) message += " (did you mean '" + join(suggestion.c_str()) + "'?)";
    throw Error(source_.where(join(key.c_str()), entry.first) + ": " + message);
  }
}

void ConfigReader::fail_at(const std::string& path, const YAML::Node& node, const std::string& message) const {
  if (path.empty()) tessera::fail("{}: {}", source_.where(path, node), message);
  tessera::fail("{}: {}: {}", source_.where(path, node), path, message);
}

std::string ConfigReader::scalar_text(const YAML::Node& node) const {
  if (node.IsScalar()) return "\"" + node.Scalar() + "\"";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, int64_t& value) {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size() && node.Tag() != "!") {
      value = v;
      return;
    }
  }
  fail_at(path, node, "expected an integer, got " + scalar_text(node));
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, double& value) {
  if (node.IsScalar() && node.Tag() != "!") {
    const std::string& s = node.Scalar();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(v)) {
      value = v;
      return;
    }
  }
  fail_at(path, node, "expected a number, got " + scalar_text(node));
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, bool& value) {
  if (node.IsScalar() && node.Tag() != "!") {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "True" || s == "yes" || s == "on") return void(value = true);
    if (s == "false" || s == "False" || s == "no" || s == "off") return void(value = false);
  }
  fail_at(path, node, "expected true or false, got " + scalar_text(node));
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, std::string& value) {
  if (node.IsNull()) return void(value = "");  // `key:` with nothing, or `--set key=`: unset
  if (!node.IsScalar()) fail_at(path, node, "expected a string, got " + scalar_text(node));
  value = node.Scalar();
}

template <typename T>
void ConfigReader::read_list(const YAML::Node& node, const std::string& path, std::vector<T>& value, const char* what) {
  if (!node.IsSequence()) fail_at(path, node, std::string("expected a list of ") + what + ", got " + scalar_text(node));
  std::vector<T> out(node.size());
  for (size_t i = 0; i < node.size(); ++i) read(node[i], path + "[" + std::to_string(i) + "]", out[i]);
  value = std::move(out);
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, std::vector<double>& value) {
  read_list(node, path, value, "numbers");
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, std::vector<int64_t>& value) {
  read_list(node, path, value, "integers");
}

void ConfigReader::read(const YAML::Node& node, const std::string& path, std::vector<std::string>& value) {
  if (node.IsScalar()) {
    value.assign(1, "");
    return read(node, path, value[0]);
  }
  read_list(node, path, value, "names");
}

void RangeChecks::require(bool ok, const std::string& path, const std::string& message) const {
  if (ok) return;
  throw Error(source_.where(path, find(path)) + ": " + path + ": " + message);
}

YAML::Node RangeChecks::find(const std::string& path) const {
  YAML::Node node = root_;
  for (const std::string& key : split_path(path)) {
    if (!node || !node.IsMap()) return YAML::Node();
    const YAML::Node& map = node;
    YAML::Node child = map[key];
    if (!child) return YAML::Node();
    node.reset(child);  // re-point the handle; `node = child` would overwrite the tree
  }
  return node;
}

void ConfigWriter::write(double v) {
  // Shortest text that reads back as the same double.
  out_ << fmt::format("{}", v);
}

template <typename T>
void ConfigWriter::write_list(const std::vector<T>& v) {
  out_ << YAML::Flow << YAML::BeginSeq;
  for (const T& x : v) write(x);
  out_ << YAML::EndSeq;
}

void ConfigWriter::write(const std::vector<double>& v) { write_list(v); }
void ConfigWriter::write(const std::vector<int64_t>& v) { write_list(v); }
void ConfigWriter::write(const std::vector<std::string>& v) { write_list(v); }

void ConfigWriter::write(const YAML::Node& v) {
  if (!v || v.IsNull())
    out_ << YAML::Null;
  else
    out_ << v;
}

}  // namespace tessera::config
