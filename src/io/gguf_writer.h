// Writing GGUF v3 files by streaming: the metadata and every tensor's name, type and shape are
// declared up front (the header carries each tensor's offset), then each tensor's bytes follow
// in declaration order, so an exporter holds one tensor at a time. The file is written as
// `<path>.tmp`, fsynced and renamed onto `path` by finish(); an existing `path` is never replaced.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/atomic_file.h"
#include "io/gguf_format.h"

namespace tessera::gguf {

// Keys in the order they are written.
using Metadata = std::vector<std::pair<std::string, Value>>;

struct TensorDecl {
  std::string name;  // at most 63 bytes (GGML_MAX_NAME)
  TensorType type;
  Shape shape;       // row-major, outermost first
};

class Writer {
 public:
  // Tensor data is aligned to metadata's general.alignment (a u32 power of two) or 32.
  Writer(std::string path, const Metadata& metadata, std::vector<TensorDecl> tensors);

  // The next declared tensor's bytes: exactly tensor_bytes(type, shape) of them.
  void write(const std::string& name, const void* data, size_t bytes);
  // Checks that every tensor was written, then syncs the file into place.
  void finish();

 private:
  void pad_to_alignment();

  std::vector<TensorDecl> tensors_;
  uint64_t alignment_ = kDefaultAlignment;
  size_t next_ = 0;
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace tessera::gguf
