#include "io/safetensors_writer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

uint64_t entry_bytes(const TensorEntry& e) {
  uint64_t n = dtype_size(e.dtype);
  for (int64_t d : e.shape) {
    TS_CHECK(d >= 0, "tensor '{}': invalid shape {}", e.name, shape_str(e.shape));
    TS_CHECK(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n), "tensor '{}': shape {} is too large",
             e.name, shape_str(e.shape));
  }
  return n;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorEntry> entries,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)), entries_(std::move(entries)) {
  // ordered_json keeps the declaration order, which is also the data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const TensorEntry& e : entries_) {
    TS_CHECK(!e.name.empty() && e.name != "__metadata__", "{}: invalid tensor name '{}'", path_, e.name);
    TS_CHECK(seen.insert(e.name).second, "{}: tensor '{}' is declared twice", path_, e.name);
    const uint64_t end = offset + with_context(path_, [&] { return entry_bytes(e); });
    header[e.name] = {{"dtype", safetensors_dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  file_ = std::make_unique<AtomicFile>(path_);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  file_->write(len, 8);
  file_->write(text.data(), text.size());
}

void SafetensorsWriter::write(const std::string& name, const Tensor& tensor) {
  TS_CHECK(!finished_, "{}: write of '{}' after finish()", path_, name);
  TS_CHECK(next_ < entries_.size(), "{}: tensor '{}' was not declared", path_, name);
  const TensorEntry& e = entries_[next_];
  TS_CHECK(name == e.name, "{}: expected tensor '{}' next (declaration order), got '{}'", path_, e.name, name);
  TS_CHECK(tensor.dtype() == e.dtype && tensor.shape() == e.shape, "{}: tensor '{}' is {}, declared as {}{}",
           path_, name, tensor.str(), dtype_name(e.dtype), shape_str(e.shape));
  const Tensor host = tensor.is_cuda() ? tensor.to(Device::cpu()) : tensor;
  file_->write(host.data(), host.nbytes());
  ++next_;
}

void SafetensorsWriter::finish() {
  TS_CHECK(!finished_, "{}: finish() called twice", path_);
  TS_CHECK(next_ == entries_.size(), "{}: tensor '{}' was declared but never written", path_,
           entries_[next_].name);
  file_->commit();
  finished_ = true;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorEntry> entries;
  for (const auto& [name, t] : tensors) entries.push_back({name, t.dtype(), t.shape()});
  SafetensorsWriter writer(path, std::move(entries), metadata);
  for (const auto& [name, t] : tensors) writer.write(name, t);
  writer.finish();
}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::string dir, std::vector<TensorEntry> entries,
                                                   uint64_t max_shard_bytes,
                                                   std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)), entries_(std::move(entries)), metadata_(std::move(metadata)) {
  TS_CHECK(max_shard_bytes > 0, "{}: max shard size must be positive", dir_);
  size_t shards = 0;
  uint64_t in_shard = 0;
  for (const TensorEntry& e : entries_) {
    const uint64_t bytes = with_context(dir_, [&] { return entry_bytes(e); });
    if (shards == 0 || (in_shard > 0 && in_shard + bytes > max_shard_bytes)) {
      ++shards;
      in_shard = 0;
    }
    in_shard += bytes;
    total_bytes_ += bytes;
    shard_of_entry_.push_back(shards - 1);
  }
  shards = std::max<size_t>(shards, 1);
  for (size_t s = 0; s < shards; ++s)
    shard_files_.push_back(shards == 1 ? "model.safetensors"
                                       : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards));
}

void ShardedSafetensorsWriter::write(const std::string& name, const Tensor& tensor) {
  TS_CHECK(next_ < entries_.size(), "{}: tensor '{}' was not declared", dir_, name);
  const size_t shard = shard_of_entry_[next_];
  if (!current_ || shard != shard_of_entry_[next_ - 1]) {
    if (current_) current_->finish();
    std::vector<TensorEntry> in_shard;
    for (size_t i = next_; i < entries_.size() && shard_of_entry_[i] == shard; ++i) in_shard.push_back(entries_[i]);
    current_ = std::make_unique<SafetensorsWriter>((fs::path(dir_) / shard_files_[shard]).string(),
                                                   std::move(in_shard), metadata_);
  }
  current_->write(name, tensor);
  ++next_;
}

void ShardedSafetensorsWriter::finish() {
  TS_CHECK(next_ == entries_.size(), "{}: tensor '{}' was declared but never written", dir_,
           entries_[next_].name);
  if (!current_)  // no tensors at all: still leave a valid, empty checkpoint
    current_ = std::make_unique<SafetensorsWriter>((fs::path(dir_) / shard_files_[0]).string(),
                                                   std::vector<TensorEntry>{}, metadata_);
  current_->finish();
  const bool sharded = shard_files_.size() > 1;
  if (sharded) {
    nlohmann::json index;
    index["metadata"] = {{"total_size", total_bytes_}};
    index["weight_map"] = nlohmann::json::object();
    for (size_t i = 0; i < entries_.size(); ++i)
      index["weight_map"][entries_[i].name] = shard_files_[shard_of_entry_[i]];
    write_file_atomically((fs::path(dir_) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  }
  // A stale file of the other layout must go: model.safetensors would shadow a new index.
  std::error_code ignored;
  fs::remove(fs::path(dir_) / (sharded ? "model.safetensors" : "model.safetensors.index.json"), ignored);
}

}  // namespace tessera
