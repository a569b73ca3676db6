// Reading GGUF files (v2 and v3, little-endian). The file is memory-mapped read-only and the whole
// header validated before anything is exposed: every count, length, type, dimension, offset and
// the alignment is checked against the bytes that are really there, allocations are bounded by
// the file's size, and any defect is one tessera::Error naming the file, the key or tensor, and
// the byte offset. Tensor data are views over the mapping, which stays alive while any is held.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/gguf_writer.h"

namespace tessera::gguf {

struct TensorInfo {
  std::string name;
  TensorType type;
  Shape shape;          // row-major, outermost first
  uint64_t offset = 0;  // from the start of the data section
  uint64_t bytes = 0;
};

class File {
 public:
  static File open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  // In file order.
  const Metadata& metadata() const { return metadata_; }
  const Value* find(const std::string& key) const;
  // A missing key is an Error naming the file and the key.
  const Value& at(const std::string& key) const;

  // In file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  const TensorInfo& tensor(const std::string& name) const;
  // The tensor's bytes as a u8 host tensor viewing the (read-only) mapping.
  Tensor data(const TensorInfo& info) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  std::shared_ptr<void> mapping_;
  const unsigned char* data_ = nullptr;  // start of the data section
  Metadata metadata_;
  std::map<std::string, size_t> key_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace tessera::gguf
