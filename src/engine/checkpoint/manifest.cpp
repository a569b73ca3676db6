#include "engine/checkpoint/manifest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TS_CHECK(in, "{}: cannot open to checksum", path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  TS_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1, "SHA-256 unavailable");
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  TS_CHECK(fd >= 0, "{}: cannot open to flush", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  TS_CHECK(rc == 0, "{}: fsync failed", path);
}

void write_manifest(const std::string& folder, const std::vector<std::string>& files) {
  nlohmann::json manifest = {{"format", 1}, {"files", nlohmann::json::object()}};
  for (const std::string& name : files) {
    const std::string path = (fs::path(folder) / name).string();
    fsync_path(path);
    manifest["files"][name] = sha256_file(path);
  }
  const std::string path = (fs::path(folder) / "COMPLETE").string();
  {
    std::ofstream out(path);
    out << manifest.dump(2) << "\n";
    TS_CHECK(out.good(), "{}: cannot write", path);
  }
  fsync_path(path);
  fsync_path(folder);
}

std::string verify_manifest(const std::string& folder) {
  const fs::path marker = fs::path(folder) / "COMPLETE";
  if (!fs::exists(marker)) return "no COMPLETE marker (the save did not finish)";
  nlohmann::json manifest;
  try {
    std::ifstream in(marker);
    manifest = nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return "COMPLETE is not valid JSON";
  }
  if (!manifest.contains("files") || !manifest["files"].is_object()) return "COMPLETE lists no files";
  for (const auto& [name, sum] : manifest["files"].items()) {
    const fs::path path = fs::path(folder) / name;
    if (name.find('/') != std::string::npos || !fs::exists(path)) return name + ": missing";
    if (!sum.is_string() || sha256_file(path.string()) != sum.get<std::string>()) return name + ": checksum mismatch";
  }
  return "";
}

}  // namespace tessera::checkpoint
