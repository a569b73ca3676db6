#include "engine/sha256sums.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "engine/checkpoint/manifest.h"
#include "io/atomic_file.h"

namespace tessera {

namespace fs = std::filesystem;

void write_sha256sums(const std::string& folder, std::vector<std::string> files) {
  std::sort(files.begin(), files.end());
  std::string content;
  for (const std::string& name : files)
    content += checkpoint::sha256_file((fs::path(folder) / name).string()) + "  " + name + "\n";
  write_file_atomically((fs::path(folder) / kSha256SumsFile).string(), content);
}

std::vector<std::string> files_in(const std::string& folder) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(folder))
    if (e.is_regular_file() && e.path().filename() != kSha256SumsFile) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// One listed file: inside the folder, present, and of the expected checksum (any case of hex).
void verify_file(const std::string& folder, const std::string& name, std::string expected, const std::string& where,
                 const std::string& list) {
  TS_CHECK(expected.size() == 64 && std::all_of(expected.begin(), expected.end(), [](char c) {
             return std::isxdigit(static_cast<unsigned char>(c)) != 0;
           }), "{}: the checksum of '{}' is not 64 hex digits", where, name);
  std::transform(expected.begin(), expected.end(), expected.begin(), [](char c) { return std::tolower(c); });
  TS_CHECK(!name.empty() && name.find("..") == std::string::npos && !fs::path(name).is_absolute(),
           "{}: '{}' is not a file inside the folder", where, name);
  const fs::path file = fs::path(folder) / name;
  TS_CHECK(fs::is_regular_file(file), "{}: listed in {} but missing (use --no-verify to skip the check)", file.string(),
           list);
  TS_CHECK(checkpoint::sha256_file(file.string()) == expected,
           "{}: checksum mismatch against {} (the file is damaged or was changed; refusing to load it; "
           "--no-verify skips the check)", file.string(), list);
}

}  // namespace

int verify_checksums(const std::string& folder, const std::map<std::string, std::string>& checksums,
                     const std::string& where) {
  for (const auto& [name, sum] : checksums) verify_file(folder, name, sum, where + "." + name, where);
  return static_cast<int>(checksums.size());
}

int verify_sha256sums(const std::string& folder) {
  const fs::path sums = fs::path(folder) / kSha256SumsFile;
  if (!fs::exists(sums)) return 0;
  std::ifstream in(sums);
  TS_CHECK(in, "{}: cannot be read", sums.string());
  std::string line;
  int line_no = 0, verified = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    // "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode), as sha256sum writes them.
    const bool hex = line.size() > 66 && std::all_of(line.begin(), line.begin() + 64, [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
    TS_CHECK(hex && line[64] == ' ' && (line[65] == ' ' || line[65] == '*'),
             "{}:{}: not a SHA256SUMS line (expected 64 hex digits, two spaces and a file name)", sums.string(), line_no);
    verify_file(folder, line.substr(66), line.substr(0, 64), fmt::format("{}:{}", sums.string(), line_no),
                kSha256SumsFile);
    ++verified;
  }
  return verified;
}

}  // namespace tessera
