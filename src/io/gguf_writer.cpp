#include "io/gguf_writer.h"

#include <set>

#include "core/error.h"

namespace tessera::gguf {

namespace {

constexpr size_t kMaxTensorName = 63;  // GGML_MAX_NAME - 1

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

void put_value(std::string& out, const Value& v) {
  put<uint32_t>(out, static_cast<uint32_t>(v.type()));
  if (v.type() == ValueType::String) return put_string(out, v.as_string());
  if (!v.is_array()) {
    out += v.numeric_bytes();
    return;
  }
  put<uint32_t>(out, static_cast<uint32_t>(v.element_type()));
  put<uint64_t>(out, v.array_size());
  if (v.element_type() != ValueType::String) {
    out += v.numeric_bytes();
    return;
  }
  for (const std::string& s : v.string_items()) put_string(out, s);
}

uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

uint64_t alignment_of(const Metadata& metadata) {
  for (const auto& [key, value] : metadata)
    if (key == "general.alignment") {
      TS_CHECK(value.type() == ValueType::U32, "general.alignment must be a u32, not {}", value.describe());
      const uint64_t a = static_cast<uint64_t>(value.as_int());
      TS_CHECK(a > 0 && (a & (a - 1)) == 0, "general.alignment {} is not a power of two", a);
      return a;
    }
  return kDefaultAlignment;
}

}  // namespace

Writer::Writer(std::string path, const Metadata& metadata, std::vector<TensorDecl> tensors)
    : tensors_(std::move(tensors)) {
  with_context(path, [&] {
    alignment_ = alignment_of(metadata);
    std::string header;
    put<uint32_t>(header, kMagic);
    put<uint32_t>(header, kVersion);
    put<uint64_t>(header, tensors_.size());
    put<uint64_t>(header, metadata.size());
    std::set<std::string> keys;
    for (const auto& [key, value] : metadata) {
      TS_CHECK(!key.empty() && keys.insert(key).second, "metadata key '{}' is empty or repeated", key);
      put_string(header, key);
      put_value(header, value);
    }
    std::set<std::string> names;
    uint64_t offset = 0;
    for (const TensorDecl& t : tensors_) {
      TS_CHECK(!t.name.empty() && t.name.size() <= kMaxTensorName, "tensor name '{}' must have 1 to {} bytes", t.name,
               kMaxTensorName);
      TS_CHECK(names.insert(t.name).second, "tensor '{}' is declared twice", t.name);
      const uint64_t bytes = with_context("tensor '" + t.name + "'", [&] { return tensor_bytes(t.type, t.shape); });
      put_string(header, t.name);
      put<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
      for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<uint64_t>(header, static_cast<uint64_t>(*d));
      put<uint32_t>(header, static_cast<uint32_t>(t.type));
      put<uint64_t>(header, offset);
      offset = align_up(offset + bytes, alignment_);
    }
    file_ = std::make_unique<AtomicFile>(path, AtomicFile::Existing::Refuse);
    file_->write(header.data(), header.size());
    pad_to_alignment();
  });
}

void Writer::pad_to_alignment() {
  static const std::string zeros(256, '\0');
  uint64_t missing = align_up(file_->bytes_written(), alignment_) - file_->bytes_written();
  while (missing > 0) {
    const uint64_t n = std::min<uint64_t>(missing, zeros.size());
    file_->write(zeros.data(), n);
    missing -= n;
  }
}

void Writer::write(const std::string& name, const void* data, size_t bytes) {
  const std::string& path = file_->path();
  TS_CHECK(next_ < tensors_.size(), "{}: tensor '{}' was not declared", path, name);
  const TensorDecl& t = tensors_[next_];
  TS_CHECK(name == t.name, "{}: expected tensor '{}' next (declaration order), got '{}'", path, t.name, name);
  const uint64_t expected = tensor_bytes(t.type, t.shape);
  TS_CHECK(bytes == expected, "{}: tensor '{}' ({} {}) needs {} bytes, got {}", path, name,
           tensor_type_info(t.type).name, shape_str(t.shape), expected, bytes);
  file_->write(data, bytes);
  pad_to_alignment();
  ++next_;
}

void Writer::finish() {
  TS_CHECK(next_ == tensors_.size(), "{}: tensor '{}' was declared but never written", file_->path(),
           tensors_[next_].name);
  file_->commit();
}

}  // namespace tessera::gguf
