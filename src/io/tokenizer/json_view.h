// Checked access to parsed JSON: every wrong type or missing key becomes a tessera::Error that
// names the JSON path, so hostile tokenizer.json files give one clear line, never a crash.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace tessera::tok {

class JsonView {
 public:
  JsonView(const nlohmann::json& j, std::string path) : j_(&j), path_(std::move(path)) {}

  const nlohmann::json& raw() const { return *j_; }
  const std::string& path() const { return path_; }
  bool is_string() const { return j_->is_string(); }
  bool is_object() const { return j_->is_object(); }

  // Member that must exist (and must not be null).
  JsonView at(const std::string& key) const {
    auto v = find(key);
    if (!v) fail("{}: missing key '{}'", path_, key);
    return *v;
  }
  // Member or nullopt when missing or null.
  std::optional<JsonView> find(const std::string& key) const {
    if (!j_->is_object()) fail("{}: expected an object", path_);
    auto it = j_->find(key);
    if (it == j_->end() || it->is_null()) return std::nullopt;
    return JsonView(*it, path_.empty() ? key : path_ + "." + key);
  }
  std::vector<JsonView> items() const {
    if (!j_->is_array()) fail("{}: expected an array", path_);
    std::vector<JsonView> out;
    out.reserve(j_->size());
    for (size_t i = 0; i < j_->size(); ++i) out.emplace_back((*j_)[i], path_ + "[" + std::to_string(i) + "]");
    return out;
  }
  const std::string& str() const {
    if (!j_->is_string()) fail("{}: expected a string", path_);
    return j_->get_ref<const std::string&>();
  }
  bool boolean() const {
    if (!j_->is_boolean()) fail("{}: expected true or false", path_);
    return j_->get<bool>();
  }
  int64_t integer() const {
    if (!j_->is_number_integer()) fail("{}: expected an integer", path_);
    return j_->get<int64_t>();
  }
  // A token id; the bound keeps a hostile file from making the id tables huge.
  int32_t id() const {
    constexpr int64_t kMaxId = 1 << 24;
    int64_t v = integer();
    if (v < 0 || v >= kMaxId) fail("{}: token id {} out of range [0, {})", path_, v, kMaxId);
    return static_cast<int32_t>(v);
  }

  std::string str_or(const std::string& key, const std::string& dflt) const {
    auto v = find(key);
    return v ? v->str() : dflt;
  }
  bool bool_or(const std::string& key, bool dflt) const {
    auto v = find(key);
    return v ? v->boolean() : dflt;
  }
  int64_t int_or(const std::string& key, int64_t dflt) const {
    auto v = find(key);
    return v ? v->integer() : dflt;
  }
  std::string type() const { return at("type").str(); }

 private:
  const nlohmann::json* j_;
  std::string path_;
};

}  // namespace tessera::tok
