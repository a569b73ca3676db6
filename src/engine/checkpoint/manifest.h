// What makes a checkpoint folder trustworthy: a COMPLETE file, written last, that lists every other
// file with its SHA-256. A folder without it, or whose files no longer match it, is never loaded.
#pragma once

#include <string>
#include <vector>

namespace tessera::checkpoint {

std::string sha256_file(const std::string& path);

// Flushes `path` (a file or a folder) to disk.
void fsync_path(const std::string& path);

// Creates or replaces `path` with `content`, flushed to disk; the write, the flush and the close
// are each checked: "PATH: cannot write: No space left on device".
void write_file(const std::string& path, const std::string& content);

// Writes folder/COMPLETE listing `files` (names inside `folder`) with their checksums, durably,
// and reads it back.
void write_manifest(const std::string& folder, const std::vector<std::string>& files);

// "" when folder/COMPLETE exists and every file it lists is there with the same checksum;
// otherwise why not ("no COMPLETE marker", "state.h5: checksum mismatch", ...).
std::string verify_manifest(const std::string& folder);

}  // namespace tessera::checkpoint
