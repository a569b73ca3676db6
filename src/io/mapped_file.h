// A whole file mapped read-only; the mapping lives as long as the returned owner (or any copy of
// it, e.g. tensors viewing the file) does.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace tessera {

struct MappedFile {
  std::shared_ptr<void> owner;  // unmaps when the last copy lets go; null for an empty file
  const unsigned char* bytes = nullptr;
  size_t size = 0;
};

// Errors (no such file, not a regular file, cannot map) are tessera::Error without the path:
// callers say which file in their context.
MappedFile map_file(const std::string& path);

}  // namespace tessera
