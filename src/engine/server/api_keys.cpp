#include "engine/server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace tessera::server {

namespace {

std::array<unsigned char, 32> sha256(const std::string& s) {
  std::array<unsigned char, 32> d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

}  // namespace

void ApiKeys::add(const std::string& key, std::string id) {
  TS_CHECK(!key.empty(), "an API key is empty");
  for (char c : key) TS_CHECK(c > ' ' && c != 0x7f, "an API key holds a space or control character");
  Key k{sha256(key), std::move(id)};
  if (k.id.empty()) {
    k.id = "sha256:";
    for (int i = 0; i < 4; ++i) k.id += fmt::format("{:02x}", k.digest[i]);
  }
  keys_.push_back(std::move(k));
}

void ApiKeys::add_file(const std::string& path) {
  std::ifstream in(path);
  TS_CHECK(in, "{}: cannot open the API keys file", path);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string first, second, extra;
    fields >> first >> second >> extra;
    if (first.empty() || first[0] == '#') continue;
    TS_CHECK(extra.empty(), "{}:{}: expected KEY or ID KEY", path, number);
    with_context(fmt::format("{}:{}", path, number), [&] { second.empty() ? add(first) : add(second, first); });
  }
}

std::optional<std::string> ApiKeys::check(const std::string& authorization) const {
  static const std::string kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) return std::nullopt;
  const auto digest = sha256(authorization.substr(kBearer.size()));
  const Key* match = nullptr;
  for (const Key& k : keys_)  // no early exit: the time does not depend on which key matched
    if (CRYPTO_memcmp(k.digest.data(), digest.data(), digest.size()) == 0) match = &k;
  if (!match) return std::nullopt;
  return match->id;
}

}  // namespace tessera::server
