// Reading typed config structs from YAML and writing them back.
//
// A config struct lists its fields once, in a `describe(visitor, struct)` function:
//     template <typename V> void describe(V& v, TrainConfig& c) {
//       v("steps", c.steps);
//       v("device", c.device, {"auto", "cpu", "cuda"});   // a string from a fixed set
//       v("schedule", c.schedule);                          // a nested section
//     }
// ConfigReader fills the struct from a YAML mapping and rejects, with one line naming the file,
// line and dotted key: unknown keys (with the closest known key), values of the wrong type, and
// strings outside their set. ConfigWriter emits the struct as YAML. Overrides given as
// `--set a.b=value` are merged into the YAML tree first, and errors about them name the --set.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace tessera::config {

// A YAML document plus where each part came from, for error messages.
struct Source {
  std::string file;                                 // the YAML file ("" when built in code)
  std::map<std::string, std::string> overrides;     // dotted path -> "--set path=value"
  std::string where(const std::string& path, const YAML::Node& node) const;
};

// Loads a YAML file; a syntax error names the file and line.
YAML::Node load_yaml_file(const std::string& path);
// Applies "a.b.c=value" (value parsed as YAML) to the tree, recording it in `source`.
void apply_override(YAML::Node& root, const std::string& assignment, Source& source);

// The closest candidate by edit distance ("" when none is close).
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

class ConfigReader {
 public:
  ConfigReader(const YAML::Node& node, const Source& source, std::string path = "")
      : node_(node), source_(source), path_(std::move(path)) {}

  // Reads one field if present; fields left out keep their defaults.
  template <typename T>
  void operator()(const char* key, T& value) {
    if (YAML::Node child = lookup(key)) read(child, join(key), value);
  }
  void operator()(const char* key, std::string& value, std::initializer_list<const char*> allowed);

  // Fails on the first key of this mapping that describe() did not name.
  void reject_unknown_keys() const;
  [[noreturn]] void fail_at(const std::string& path, const YAML::Node& node, const std::string& message) const;

 private:
  YAML::Node lookup(const char* key);
  std::string join(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  std::string scalar_text(const YAML::Node& node) const;
  template <typename T>
  void read_list(const YAML::Node& node, const std::string& path, std::vector<T>& value, const char* what);

  void read(const YAML::Node& node, const std::string& path, int64_t& value);
  void read(const YAML::Node& node, const std::string& path, double& value);
  void read(const YAML::Node& node, const std::string& path, bool& value);
  void read(const YAML::Node& node, const std::string& path, std::string& value);
  void read(const YAML::Node& node, const std::string& path, std::vector<double>& value);
  void read(const YAML::Node& node, const std::string& path, std::vector<int64_t>& value);
  // A list of names; one name alone counts as a list of one.
  void read(const YAML::Node& node, const std::string& path, std::vector<std::string>& value);
  void read(const YAML::Node& node, const std::string& path, YAML::Node& value) { (void)path; value = node; }
  // An optional section: present (a mapping, possibly empty) or absent (or null).
  template <typename Section>
  void read(const YAML::Node& node, const std::string& path, std::optional<Section>& section) {
    if (node.IsNull()) return section.reset();
    section.emplace();
    read(node, path, *section);
  }
  template <typename Section>
  void read(const YAML::Node& node, const std::string& path, Section& section) {
    if (!node.IsMap()) fail_at(path, node, "expected a mapping of keys, got " + scalar_text(node));
    ConfigReader nested(node, source_, path);
    describe(nested, section);
    nested.reject_unknown_keys();
  }

  YAML::Node node_;
  const Source& source_;
  std::string path_;
  std::vector<std::string> known_;
};

class ConfigWriter {
 public:
  explicit ConfigWriter(YAML::Emitter& out) : out_(out) {}

  template <typename T>
  void operator()(const char* key, const T& value) {
    out_ << YAML::Key << key << YAML::Value;
    write(value);
  }
  void operator()(const char* key, const std::string& value, std::initializer_list<const char*>) {
    (*this)(key, value);
  }

 private:
  template <typename T>
  void write_list(const std::vector<T>& v);
  void write(int64_t v) { out_ << v; }
  void write(double v);
  void write(bool v) { out_ << v; }
  void write(const std::string& v) { out_ << v; }
  void write(const std::vector<double>& v);
  void write(const std::vector<int64_t>& v);
  void write(const std::vector<std::string>& v);
  void write(const YAML::Node& v);
  template <typename Section>
  void write(const std::optional<Section>& section) {
    if (section) write(*section);
    else out_ << YAML::Null;
  }
  template <typename Section>
  void write(const Section& section) {
    out_ << YAML::BeginMap;
    describe(*this, const_cast<Section&>(section));
    out_ << YAML::EndMap;
  }

  YAML::Emitter& out_;
};

// Fills `config` from `root` (a mapping; null counts as empty) per its describe().
// Range checks after the types are right; a failure names the key where the file (or --set) sets it.
class RangeChecks {
 public:
  RangeChecks(const YAML::Node& root, const Source& source) : root_(root), source_(source) {}
  // Throws "<file>:<line>: <path>: <message>" unless ok.
  void require(bool ok, const std::string& path, const std::string& message) const;
  // "<file>:<line>" (or the --set) that sets `path`.
  std::string where(const std::string& path) const { return source_.where(path, find(path)); }
  const Source& source() const { return source_; }

 private:
  YAML::Node find(const std::string& path) const;
  YAML::Node root_;
  const Source& source_;
};

template <typename Config>
void read_config(const YAML::Node& root, const Source& source, Config& config) {
  if (root && !root.IsNull() && !root.IsMap()) {
    ConfigReader reader(root, source);
    reader.fail_at("", root, "the top level must be a mapping of sections");
  }
  ConfigReader reader(root, source);
  describe(reader, config);
  reader.reject_unknown_keys();
}

template <typename Config>
std::string write_config(const Config& config) {
  YAML::Emitter out;
  ConfigWriter writer(out);
  out << YAML::BeginMap;
  describe(writer, const_cast<Config&>(config));
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tessera::config
