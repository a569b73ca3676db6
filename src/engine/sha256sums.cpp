#include "engine/sha256sums.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

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

std::map<std::string, std::string> read_sha256sums(const std::string& folder) {
  std::map<std::string, std::string> sums;
  const fs::path path = fs::path(folder) / kSha256SumsFile;
  if (!fs::exists(path)) return sums;
  std::ifstream in(path);
  TS_CHECK(in, "{}: cannot be read", path.string());
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // written on Windows
    if (line.empty()) continue;
    // "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode), as sha256sum writes them.
    const bool hex = line.size() > 66 && std::all_of(line.begin(), line.begin() + 64, [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
    TS_CHECK(hex && line[64] == ' ' && (line[65] == ' ' || line[65] == '*'),
             "{}:{}: not a SHA256SUMS line (expected 64 hex digits, two spaces and a file name)", path.string(), line_no);
    std::string expected = line.substr(0, 64);
    std::transform(expected.begin(), expected.end(), expected.begin(), [](char c) { return std::tolower(c); });
    const std::string name = line.substr(66);
    TS_CHECK(name.find("..") == std::string::npos && !fs::path(name).is_absolute(),
             "{}:{}: '{}' is not a file inside the folder", path.string(), line_no, name);
    sums[name] = expected;
  }
  return sums;
}

std::string sha256sums_mismatch(const std::string& file) {
  return fmt::format("{}: checksum mismatch against {} (the file is damaged or was changed; refusing to load it; "
                     "--no-verify skips the check)", file, kSha256SumsFile);
}

int verify_checksums(const std::string& folder, const std::map<std::string, std::string>& checksums,
                     const std::string& where) {
  for (const auto& [name, sum] : checksums) {
    TS_CHECK(sum.size() == 64 && std::all_of(sum.begin(), sum.end(), [](char c) {
               return std::isxdigit(static_cast<unsigned char>(c)) != 0;
             }), "{}.{}: the checksum is not 64 hex digits", where, name);
    TS_CHECK(!name.empty() && name.find("..") == std::string::npos && !fs::path(name).is_absolute(),
             "{}: '{}' is not a file inside the folder", where, name);
    std::string expected = sum;
    std::transform(expected.begin(), expected.end(), expected.begin(), [](char c) { return std::tolower(c); });
    const fs::path file = fs::path(folder) / name;
    TS_CHECK(fs::is_regular_file(file), "{}: listed in {} but missing (use --no-verify to skip the check)",
             file.string(), where);
    TS_CHECK(checkpoint::sha256_file(file.string()) == expected,
             "{}: checksum mismatch against {} (the file is damaged or was changed; refusing to load it; "
             "--no-verify skips the check)", file.string(), where);
  }
  return static_cast<int>(checksums.size());
}

int verify_sha256sums(const std::string& folder) {
  int verified = 0;
  for (const auto& [name, expected] : read_sha256sums(folder)) {
    const fs::path file = fs::path(folder) / name;
    TS_CHECK(fs::is_regular_file(file), "{}: listed in {} but missing (use --no-verify to skip the check)",
             file.string(), kSha256SumsFile);
    TS_CHECK(checkpoint::sha256_file(file.string()) == expected, "{}", sha256sums_mismatch(file.string()));
    ++verified;
  }
  return verified;
}

}  // namespace tessera
