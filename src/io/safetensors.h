// Reading safetensors checkpoints: one file, or a Hugging Face folder of shards.
// A file is memory-mapped read-only and its header fully validated before anything is exposed;
// tensors are host views over the mapping, which stays alive as long as any of them does.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera {

// Where a tensor lives in its file. Offsets are relative to the data section (after the header),
// as in the header's data_offsets.
struct TensorInfo {
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Safetensors' dtype names ("F32", "BF16", ...): the ones Tessera reads and writes.
std::string_view safetensors_dtype_name(DType dtype);

class SafetensorsFile {
 public:
  // Maps and validates `path`; any defect is a tessera::Error naming the file and the entry.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in file order (ascending data offset; ties broken by name).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // A host tensor over the mapping (a copy only if the data is misaligned for its dtype). The
  // mapping is read-only: clone() before writing to it.
  Tensor tensor(const std::string& name) const;
  // The header's optional __metadata__ (string -> string).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  std::shared_ptr<void> mapping_;  // unmaps when the last file object or tensor lets go
  const char* data_ = nullptr;     // start of the data section inside the mapping
  std::vector<std::string> names_;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint folder: `model.safetensors`, or shards listed by `model.safetensors.index.json`
// (model.safetensors wins when both exist, as in transformers). Shard names must be plain file
// names in the folder, and each shard must hold exactly the tensors the index maps to it.
// `open` also accepts the path of a single .safetensors file.
class SafetensorsModel {
 public:
  static SafetensorsModel open(const std::string& path);

  // All tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  Tensor tensor(const std::string& name) const;
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  const SafetensorsFile& shard(const std::string& name) const;

  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> shard_of_;  // tensor name -> index in shards_
};

}  // namespace tessera
