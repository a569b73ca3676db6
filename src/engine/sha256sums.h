// SHA256SUMS: the checksums `tessera export` writes beside the files it writes, in sha256sum's
// format ("<64 hex digits>  <name>" per line, so `sha256sum -c SHA256SUMS` checks them too), and
// that generate, eval and serve verify before they use a model folder.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace tessera {

inline constexpr const char* kSha256SumsFile = "SHA256SUMS";

// Writes folder/SHA256SUMS (atomically) listing `files` (names inside `folder`), sorted.
void write_sha256sums(const std::string& folder, std::vector<std::string> files);

// Every regular file in `folder` (not SHA256SUMS itself), sorted: what an export wrote.
std::vector<std::string> files_in(const std::string& folder);

// folder/SHA256SUMS as file name -> lower-case hex SHA-256 (empty when there is none); a malformed
// line is an error naming the line.
std::map<std::string, std::string> read_sha256sums(const std::string& folder);

// The error for `file`, whose checksum differs from the one its folder's SHA256SUMS lists.
std::string sha256sums_mismatch(const std::string& file);

// When folder/SHA256SUMS exists: checks every file it lists and throws an Error naming the first
// file that is missing or whose checksum differs; a malformed line is an error naming the line.
// Returns the number of files verified (0: the folder has no SHA256SUMS).
int verify_sha256sums(const std::string& folder);

}  // namespace tessera
