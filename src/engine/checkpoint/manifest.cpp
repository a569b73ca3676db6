#include "engine/checkpoint/manifest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/fault_injection.h"

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
  TS_CHECK(fd >= 0, "{}: cannot open to flush: {}", path, error_text(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  TS_CHECK(rc == 0, "{}: cannot flush to disk: {}", path, error_text(error));
}

void write_file(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TS_CHECK(fd >= 0, "{}: cannot create: {}", path, error_text(errno));
  int error = injected_write_error(path);
  const bool injected = error != 0;
  for (size_t done = 0; error == 0 && done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) error = n < 0 ? errno : ENOSPC;
    else done += static_cast<size_t>(n);
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  TS_CHECK(error == 0, "{}: cannot write: {}", path, error_text(error, injected));
}

void write_manifest(const std::string& folder, const std::vector<std::string>& files) {
  nlohmann::json manifest = {{"format", 1}, {"files", nlohmann::json::object()}};
  for (const std::string& name : files) {
    const std::string path = (fs::path(folder) / name).string();
    fsync_path(path);
    manifest["files"][name] = sha256_file(path);
  }
  const std::string text = manifest.dump(2) + "\n";
  const std::string path = (fs::path(folder) / "COMPLETE").string();
  write_file(path, text);
  fsync_path(folder);
  // Read back: what says "complete" must be what was meant.
  std::ifstream in(path, std::ios::binary);
  const std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TS_CHECK(back == text, "{}: reads back differently from what was written", path);
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
