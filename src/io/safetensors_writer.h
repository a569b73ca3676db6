// Writing safetensors files by streaming: entries are declared up front so the header can go
// first, then each tensor's bytes follow in declaration order. An exporter therefore holds one
// tensor at a time, never the whole model. Files appear atomically: bytes go to `<path>.tmp`,
// which is fsynced and renamed onto `<path>` by finish().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/atomic_file.h"

namespace tessera {

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};

class SafetensorsWriter {
 public:
  // Creates `<path>.tmp` and writes the header (padded with spaces to a multiple of 8 bytes, so
  // every tensor's data starts 8-byte aligned).
  SafetensorsWriter(std::string path, std::vector<TensorEntry> entries,
                    std::map<std::string, std::string> metadata = {});
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  // The temporary file is removed unless finish() succeeded.

  // Writes the next declared entry; `name`, dtype and shape must match it. CUDA tensors are
  // copied to the host first.
  void write(const std::string& name, const Tensor& tensor);
  // Checks that every entry was written, then fsyncs and renames the file into place.
  void finish();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<TensorEntry> entries_;
  size_t next_ = 0;
  std::unique_ptr<AtomicFile> file_;
  bool finished_ = false;
};

// Writes host or CUDA tensors to one file.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A Hugging Face sharded export into `dir`: model-00001-of-0000N.safetensors ... plus
// model.safetensors.index.json (metadata.total_size, weight_map). Shards are planned from the
// declared entries in order: a shard closes when the next tensor would take it past
// `max_shard_bytes` (a single larger tensor gets a shard of its own). A plan of one shard is
// written as model.safetensors with no index, as transformers does. finish() removes a stale file
// of the other layout (an old model.safetensors or index) so readers cannot pick it up.
class ShardedSafetensorsWriter {
 public:
  static constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;

  ShardedSafetensorsWriter(std::string dir, std::vector<TensorEntry> entries,
                           uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                           std::map<std::string, std::string> metadata = {});

  // Writes the next declared entry, opening the next shard when the current one is full.
  void write(const std::string& name, const Tensor& tensor);
  // Finishes the last shard, then writes the index (when there is more than one shard).
  void finish();

  // Shard file names, in order.
  const std::vector<std::string>& shard_files() const { return shard_files_; }

 private:
  std::string dir_;
  std::vector<TensorEntry> entries_;
  std::vector<size_t> shard_of_entry_;
  std::vector<std::string> shard_files_;
  std::map<std::string, std::string> metadata_;
  uint64_t total_bytes_ = 0;
  size_t next_ = 0;
  std::unique_ptr<SafetensorsWriter> current_;
};

}  // namespace tessera
