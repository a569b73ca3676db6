#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/error.h"
#include "io/json_error.h"
#include "io/mapped_file.h"

namespace tessera {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Real headers are a few MB at most; a larger length means a corrupt or hostile file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeName {
  std::string_view name;
  DType dtype;
};
constexpr DTypeName kDTypes[] = {{"F32", DType::F32}, {"BF16", DType::BF16}, {"F16", DType::F16},
                                 {"I64", DType::I64}, {"I32", DType::I32},   {"I8", DType::I8},
                                 {"U8", DType::U8}};

DType parse_st_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  fail("dtype '{}' is not supported (expected one of F32, BF16, F16, I64, I32, I8, U8)", name);
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t parse_offset(const json& value) {
  TS_CHECK(value.is_number_unsigned(), "expected a non-negative integer, got {}", value.dump());
  return value.get<uint64_t>();
}

TensorInfo parse_entry(const json& entry, uint64_t data_size) {
  TS_CHECK(entry.is_object(), "expected an object with dtype, shape and data_offsets");
  auto field = [&](const char* key) -> const json& {
    auto it = entry.find(key);
    TS_CHECK(it != entry.end(), "missing '{}'", key);
    return *it;
  };
  TensorInfo info;
  const json& dtype = field("dtype");
  TS_CHECK(dtype.is_string(), "'dtype' must be a string");
  info.dtype = parse_st_dtype(dtype.get<std::string>());

  const json& shape = field("shape");
  TS_CHECK(shape.is_array(), "'shape' must be an array of non-negative integers");
  uint64_t numel = 1;
  for (const json& d : shape) {
    TS_CHECK(d.is_number_unsigned(), "'shape' must be an array of non-negative integers, got {}", shape.dump());
    const uint64_t dim = d.get<uint64_t>();
    TS_CHECK(dim <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
                 !__builtin_mul_overflow(numel, dim, &numel),
             "shape {} is too large", shape.dump());
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  TS_CHECK(!__builtin_mul_overflow(numel, dtype_size(info.dtype), &nbytes) &&
               numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
           "shape {} is too large", shape.dump());

  const json& offsets = field("data_offsets");
  TS_CHECK(offsets.is_array() && offsets.size() == 2, "'data_offsets' must be [begin, end]");
  info.begin = parse_offset(offsets[0]);
  info.end = parse_offset(offsets[1]);
  TS_CHECK(info.begin <= info.end, "data_offsets [{}, {}] end before they begin", info.begin, info.end);
  TS_CHECK(info.end <= data_size, "data_offsets [{}, {}] run past the data section of {} bytes", info.begin,
           info.end, data_size);
  TS_CHECK(info.end - info.begin == nbytes, "{} {} needs {} bytes but data_offsets [{}, {}] span {}",
           dtype.get<std::string>(), shape.dump(), nbytes, info.begin, info.end, info.end - info.begin);
  return info;
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  fail("dtype {} has no safetensors name", dtype_name(dtype));
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  return with_context(path, [&] {
    SafetensorsFile file;
    file.path_ = path;
    const MappedFile mapped = map_file(path);
    const size_t size = mapped.size;
    TS_CHECK(size >= 8, "file of {} bytes is too short for a safetensors header", size);
    file.mapping_ = mapped.owner;
    const unsigned char* bytes = mapped.bytes;

    const uint64_t header_len = read_u64_le(bytes);
    TS_CHECK(header_len <= kMaxHeaderBytes, "header length {} exceeds the {} byte limit", header_len,
             kMaxHeaderBytes);
    TS_CHECK(header_len <= size - 8, "header length {} runs past the end of the {} byte file", header_len,
             size);
    const char* header = reinterpret_cast<const char*>(bytes) + 8;
    file.data_ = header + header_len;
    const uint64_t data_size = size - 8 - header_len;

    json root;
    try {
      root = json::parse(header, header + header_len);
    } catch (const json::exception& e) {
      fail("header is not valid JSON: {}", json_parse_message(e, std::string_view(header, header_len)));
    }
    TS_CHECK(root.is_object(), "header must be a JSON object");

    std::vector<std::pair<std::string, TensorInfo>> entries;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it.key() == "__metadata__") {
        TS_CHECK(it->is_object(), "__metadata__ must be an object of strings");
        for (auto m = it->begin(); m != it->end(); ++m) {
          TS_CHECK(m->is_string(), "__metadata__ '{}' must be a string", m.key());
          file.metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      TS_CHECK(!it.key().empty(), "a tensor has an empty name");
      entries.emplace_back(it.key(), with_context("tensor '" + it.key() + "'",
                                                  [&] { return parse_entry(*it, data_size); }));
    }

    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      return std::tie(a.second.begin, a.second.end, a.first) < std::tie(b.second.begin, b.second.end, b.first);
    });
    // Sorted by start: a tensor overlaps another exactly when it starts before the previous end.
    // Empty tensors occupy no bytes and cannot overlap anything.
    uint64_t prev_end = 0;
    const std::string* prev_name = nullptr;
    for (const auto& [name, info] : entries) {
      if (info.begin == info.end) continue;
      TS_CHECK(info.begin >= prev_end, "tensors '{}' and '{}' overlap in the data section", *prev_name, name);
      prev_end = info.end;
      prev_name = &name;
    }
    for (auto& [name, info] : entries) {
      file.names_.push_back(name);
      file.infos_.emplace(name, std::move(info));
    }
    return file;
  });
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  TS_CHECK(it != infos_.end(), "{}: no tensor '{}'", path_, name);
  return it->second;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& i = info(name);
  void* data = const_cast<char*>(data_ + i.begin);  // PROT_READ: callers must not write through it
  Tensor view = Tensor::wrap(data, i.shape, i.dtype, Device::cpu(), mapping_);
  // The header length decides alignment; kernels expect naturally aligned elements.
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(i.dtype) != 0) return view.clone();
  return view;
}

namespace {

// Shard names must be plain file names inside the checkpoint folder.
void check_shard_name(const std::string& name) {
  TS_CHECK(!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
               name.find('\\') == std::string::npos && name.find('\0') == std::string::npos,
           "shard file name '{}' must be a plain file name inside the checkpoint folder", name);
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TS_CHECK(in, "{}: cannot open: {}", path, std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, json_parse_message(e));
  }
}

}  // namespace

SafetensorsModel SafetensorsModel::open(const std::string& path) {
  SafetensorsModel model;
  const fs::path dir(path);
  if (!fs::is_directory(dir) || fs::is_regular_file(dir / "model.safetensors")) {
    const std::string file = fs::is_directory(dir) ? (dir / "model.safetensors").string() : path;
    model.shards_.push_back(SafetensorsFile::open(file));
    for (const auto& name : model.shards_[0].names()) model.shard_of_[name] = 0;
    return model;
  }

  const std::string index_path = (dir / "model.safetensors.index.json").string();
  TS_CHECK(fs::is_regular_file(index_path), "{}: no model.safetensors or model.safetensors.index.json", path);
  const json index = read_json_file(index_path);
  TS_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
           "{}: expected an object with a 'weight_map' object", index_path);

  TS_CHECK(!index["weight_map"].empty(), "{}: weight_map is empty", index_path);
  std::map<std::string, size_t> shard_index;  // shard file name -> index in shards_
  const json& weight_map = index["weight_map"];
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    TS_CHECK(it->is_string(), "{}: weight_map '{}' must name a shard file", index_path, it.key());
    const std::string shard = it->get<std::string>();
    with_context(index_path + ": weight_map '" + it.key() + "'", [&] { check_shard_name(shard); });
    auto [pos, inserted] = shard_index.emplace(shard, model.shards_.size());
    if (inserted) model.shards_.push_back(SafetensorsFile::open((dir / shard).string()));
    TS_CHECK(model.shards_[pos->second].contains(it.key()), "{}: maps '{}' to {}, which does not contain it",
             index_path, it.key(), shard);
    model.shard_of_[it.key()] = pos->second;
  }
  // A tensor the index does not place in its shard would be invisible or ambiguous.
  for (size_t s = 0; s < model.shards_.size(); ++s)
    for (const auto& name : model.shards_[s].names()) {
      auto it = model.shard_of_.find(name);
      TS_CHECK(it != model.shard_of_.end() && it->second == s,
               "{}: holds tensor '{}', which {} does not map to this shard",
               model.shards_[s].path(), name, index_path);
    }
  return model;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  for (const auto& [name, shard] : shard_of_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsModel::shard(const std::string& name) const {
  auto it = shard_of_.find(name);
  TS_CHECK(it != shard_of_.end(), "checkpoint has no tensor '{}'", name);
  return shards_[it->second];
}

const TensorInfo& SafetensorsModel::info(const std::string& name) const { return shard(name).info(name); }

Tensor SafetensorsModel::tensor(const std::string& name) const { return shard(name).tensor(name); }

}  // namespace tessera
