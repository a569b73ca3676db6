// API keys: loaded from --api-key, an environment variable and a keys file, checked against the
// Bearer header in constant time (SHA-256 digests compared with CRYPTO_memcmp, every key tried).
// A key is never logged: logs and metrics name its id (given in the file, else "sha256:" and the
// first 8 hex digits of its digest).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace tessera::server {

class ApiKeys {
 public:
  // Adds a key with an optional id; an empty key is an error (it would open the door).
  void add(const std::string& key, std::string id = "");
  // A file of one key per line, "KEY" or "ID KEY"; blank lines and "#" comments skipped. Errors
  // name the file and line (never the key).
  void add_file(const std::string& path);

  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }
  // The id of the key in an `Authorization: Bearer KEY` header value, or nothing.
  std::optional<std::string> check(const std::string& authorization) const;

 private:
  struct Key {
    std::array<unsigned char, 32> digest;
    std::string id;
  };
  std::vector<Key> keys_;
};

}  // namespace tessera::server
