#include "io/gguf_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/mapped_file.h"

namespace tessera::gguf {

namespace {

constexpr size_t kMaxTensorName = 63;  // GGML_MAX_NAME - 1
// The least a metadata entry or a tensor description can occupy: a hostile count larger than
// the bytes left could hold is refused before anything is allocated for it.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;           // empty key, type, one-byte value
constexpr uint64_t kMinTensorBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, one dim, type, offset

// Reads the header front to back; every read is checked against the bytes left.
class Cursor {
 public:
  Cursor(const unsigned char* bytes, size_t size) : bytes_(bytes), size_(size) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  const unsigned char* take(uint64_t n, const char* what) {
    TS_CHECK(n <= remaining(), "{} at byte {} needs {} bytes but the file ends after {}", what, pos_, n, remaining());
    const unsigned char* p = bytes_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  template <typename T>
  T read(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    const unsigned char* p = take(len, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
  }
  // A count of items needing at least `min_bytes` each; more than could fit is an error.
  uint64_t read_count(uint64_t min_bytes, const char* what) {
    const size_t at = pos_;
    const uint64_t n = read<uint64_t>(what);
    TS_CHECK(n <= remaining() / min_bytes, "{} {} at byte {} cannot fit in the {} bytes left", what, n, at,
             remaining());
    return n;
  }

 private:
  const unsigned char* bytes_;
  size_t size_;
  size_t pos_ = 0;
};

ValueType read_value_type(Cursor& c, const char* what) {
  const size_t at = c.pos();
  const uint32_t id = c.read<uint32_t>(what);
  TS_CHECK(is_valid_value_type(id), "{} at byte {}: unknown value type {}", what, at, id);
  return static_cast<ValueType>(id);
}

Value read_value(Cursor& c, ValueType type) {
  if (type == ValueType::String) return Value::string(c.read_string("string"));
  if (type != ValueType::Array) {
    const unsigned char* p = c.take(scalar_size(type), "value");
    return Value::scalar_bytes(type, std::string(reinterpret_cast<const char*>(p), scalar_size(type)));
  }
  const size_t at = c.pos();
  const ValueType element = read_value_type(c, "array element type");
  TS_CHECK(element != ValueType::Array, "array at byte {}: arrays of arrays are not supported", at);
  if (element == ValueType::String) {
    const uint64_t n = c.read_count(8, "array length");
    std::vector<std::string> items;
    items.reserve(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i) items.push_back(c.read_string("array string"));
    return Value::strings(std::move(items));
  }
  const uint64_t n = c.read_count(scalar_size(element), "array length");
  const unsigned char* p = c.take(n * scalar_size(element), "array");
  return Value::array_bytes(element, std::string(reinterpret_cast<const char*>(p), n * scalar_size(element)));
}

TensorInfo read_tensor_info(Cursor& c) {
  TensorInfo t;
  const size_t at = c.pos();
  t.name = c.read_string("tensor name");
  return with_context("tensor '" + t.name + "' (described at byte " + std::to_string(at) + ")", [&] {
    TS_CHECK(!t.name.empty() && t.name.size() <= kMaxTensorName, "a tensor name has 1 to {} bytes, not {}",
             kMaxTensorName, t.name.size());
    const uint32_t dims = c.read<uint32_t>("dimension count");
    TS_CHECK(dims >= 1 && dims <= static_cast<uint32_t>(kMaxDims), "{} dimensions (expected 1 to {})", dims, kMaxDims);
    for (uint32_t d = 0; d < dims; ++d) {
      const uint64_t n = c.read<uint64_t>("dimension");
      TS_CHECK(n >= 1 && n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "dimension {} is {}", d, n);
      t.shape.insert(t.shape.begin(), static_cast<int64_t>(n));  // the file lists ne[0] first
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    const TensorTypeInfo* info = find_tensor_type(type);
    TS_CHECK(info, "ggml type {} is not one Tessera reads (f32, f16, bf16, q8_0, q4_0)", type);
    t.type = info->type;
    t.bytes = tensor_bytes(t.type, t.shape);
    t.offset = c.read<uint64_t>("tensor offset");
    return t;
  });
}

uint64_t alignment_from(const Metadata& metadata, const std::map<std::string, size_t>& index) {
  auto it = index.find("general.alignment");
  if (it == index.end()) return kDefaultAlignment;
  const Value& v = metadata[it->second].second;
  TS_CHECK(v.type() == ValueType::U32, "general.alignment must be a u32, not {}", v.describe());
  const uint64_t a = static_cast<uint64_t>(v.as_int());
  TS_CHECK(a > 0 && (a & (a - 1)) == 0, "general.alignment {} is not a power of two", a);
  return a;
}

}  // namespace

File File::open(const std::string& path) {
  return with_context(path, [&] {
    File file;
    file.path_ = path;
    const MappedFile mapped = map_file(path);
    file.mapping_ = mapped.owner;
    Cursor c(mapped.bytes, mapped.size);

    TS_CHECK(mapped.size >= 4 && c.read<uint32_t>("magic") == kMagic, "not a GGUF file (no GGUF magic)");
    file.version_ = c.read<uint32_t>("version");
    TS_CHECK(file.version_ == 2 || file.version_ == 3, "GGUF version {} is not supported (expected 2 or 3)",
             file.version_);
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read_count(kMinKvBytes, "metadata count");
    TS_CHECK(n_tensors <= c.remaining() / kMinTensorBytes, "tensor count {} cannot fit in the {} bytes left",
             n_tensors, c.remaining());

    file.metadata_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
      const size_t at = c.pos();
      std::string key = c.read_string("metadata key");
      with_context("metadata '" + key + "' (at byte " + std::to_string(at) + ")", [&] {
        TS_CHECK(!key.empty(), "empty key");
        TS_CHECK(file.key_index_.emplace(key, file.metadata_.size()).second, "the key appears twice");
        const ValueType type = read_value_type(c, "value type");
        file.metadata_.emplace_back(key, read_value(c, type));
      });
    }
    file.alignment_ = alignment_from(file.metadata_, file.key_index_);

    file.tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo t = read_tensor_info(c);
      TS_CHECK(file.tensor_index_.emplace(t.name, file.tensors_.size()).second, "tensor '{}' appears twice", t.name);
      file.tensors_.push_back(std::move(t));
    }

    // The data section starts at the first aligned byte after the header.
    const uint64_t data_start = (c.pos() + file.alignment_ - 1) / file.alignment_ * file.alignment_;
    const uint64_t data_size = mapped.size >= data_start ? mapped.size - data_start : 0;
    std::vector<const TensorInfo*> by_offset;
    for (const TensorInfo& t : file.tensors_) {
      with_context("tensor '" + t.name + "'", [&] {
        TS_CHECK(t.offset % file.alignment_ == 0, "offset {} is not a multiple of the alignment {}", t.offset,
                 file.alignment_);
        TS_CHECK(t.offset <= data_size && t.bytes <= data_size - t.offset,
                 "{} bytes at offset {} run past the data section of {} bytes", t.bytes, t.offset, data_size);
      });
      by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i)
      TS_CHECK(by_offset[i]->offset >= by_offset[i - 1]->offset + by_offset[i - 1]->bytes,
               "tensors '{}' and '{}' overlap in the data section", by_offset[i - 1]->name, by_offset[i]->name);
    file.data_ = mapped.bytes + std::min<uint64_t>(data_start, mapped.size);
    return file;
  });
}

const Value* File::find(const std::string& key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const Value& File::at(const std::string& key) const {
  const Value* v = find(key);
  TS_CHECK(v, "{}: no metadata '{}'", path_, key);
  return *v;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  TS_CHECK(t, "{}: no tensor '{}'", path_, name);
  return *t;
}

Tensor File::data(const TensorInfo& info) const {
  void* p = const_cast<unsigned char*>(data_ + info.offset);  // PROT_READ: callers must not write through it
  return Tensor::wrap(p, {static_cast<int64_t>(info.bytes)}, DType::U8, Device::cpu(), mapping_);
}

}  // namespace tessera::gguf
