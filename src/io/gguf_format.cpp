#include "io/gguf_format.h"

#include <cstring>
#include <limits>

#include "core/error.h"

namespace tessera::gguf {

namespace {

constexpr TensorTypeInfo kTensorTypes[] = {
    {TensorType::F32, "f32", 1, 4},     {TensorType::F16, "f16", 1, 2},      {TensorType::BF16, "bf16", 1, 2},
    {TensorType::Q8_0, "q8_0", 32, 34}, {TensorType::Q4_0, "q4_0", 32, 18},
};

constexpr std::string_view kValueTypeNames[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};

template <typename T>
std::string bytes_of(const T* values, size_t count) {
  return std::string(reinterpret_cast<const char*>(values), count * sizeof(T));
}

bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
    case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64:
      return true;
    default:
      return false;
  }
}

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

double float_at(ValueType type, const char* p) {
  return type == ValueType::F32 ? static_cast<double>(load<float>(p)) : load<double>(p);
}

}  // namespace

const TensorTypeInfo* find_tensor_type(uint32_t id) {
  for (const auto& t : kTensorTypes)
    if (static_cast<uint32_t>(t.type) == id) return &t;
  return nullptr;
}

const TensorTypeInfo& tensor_type_info(TensorType type) { return *find_tensor_type(static_cast<uint32_t>(type)); }

TensorType parse_tensor_type(std::string_view name) {
  for (const auto& t : kTensorTypes)
    if (t.name == name) return t.type;
  fail("unknown GGUF tensor type '{}' (expected one of f32, f16, bf16, q8_0, q4_0)", name);
}

uint64_t tensor_bytes(TensorType type, const Shape& shape) {
  const TensorTypeInfo& info = tensor_type_info(type);
  TS_CHECK(!shape.empty() && static_cast<int>(shape.size()) <= kMaxDims, "a GGUF tensor has 1 to {} dimensions, not {}",
           kMaxDims, shape.size());
  uint64_t elements = 1;
  for (int64_t d : shape) {
    TS_CHECK(d > 0, "shape {} has a dimension that is not positive", shape_str(shape));
    TS_CHECK(!__builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements) &&
                 elements <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             "shape {} is too large", shape_str(shape));
  }
  TS_CHECK(shape.back() % info.block_elements == 0, "{} needs rows of whole {}-element blocks; shape {} has rows of {}",
           info.name, info.block_elements, shape_str(shape), shape.back());
  uint64_t bytes = 0;
  TS_CHECK(!__builtin_mul_overflow(elements / info.block_elements, static_cast<uint64_t>(info.block_bytes), &bytes),
           "shape {} is too large", shape_str(shape));
  return bytes;
}

uint32_t file_type_of(TensorType type) {
  switch (type) {
    case TensorType::F32: return 0;   // LLAMA_FTYPE_ALL_F32
    case TensorType::F16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case TensorType::Q4_0: return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case TensorType::Q8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case TensorType::BF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
  }
  fail("unknown tensor type {}", static_cast<uint32_t>(type));
}

bool is_valid_value_type(uint32_t id) { return id <= static_cast<uint32_t>(ValueType::F64); }

std::string_view value_type_name(ValueType type) {
  const auto i = static_cast<uint32_t>(type);
  return is_valid_value_type(i) ? kValueTypeNames[i] : "unknown";
}

size_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::String: case ValueType::Array: return 0;
  }
  return 0;
}

Value Value::u32(uint32_t v) { return scalar_bytes(ValueType::U32, bytes_of(&v, 1)); }
Value Value::i32(int32_t v) { return scalar_bytes(ValueType::I32, bytes_of(&v, 1)); }
Value Value::u64(uint64_t v) { return scalar_bytes(ValueType::U64, bytes_of(&v, 1)); }
Value Value::f32(float v) { return scalar_bytes(ValueType::F32, bytes_of(&v, 1)); }
Value Value::boolean(bool v) { return scalar_bytes(ValueType::Bool, std::string(1, v ? '\1' : '\0')); }

Value Value::string(std::string v) {
  Value out(ValueType::String, ValueType::String);
  out.strings_.push_back(std::move(v));
  return out;
}

Value Value::strings(std::vector<std::string> v) {
  Value out(ValueType::Array, ValueType::String);
  out.strings_ = std::move(v);
  return out;
}

Value Value::i32s(const std::vector<int32_t>& v) { return array_bytes(ValueType::I32, bytes_of(v.data(), v.size())); }
Value Value::f32s(const std::vector<float>& v) { return array_bytes(ValueType::F32, bytes_of(v.data(), v.size())); }

Value Value::scalar_bytes(ValueType type, std::string bytes) {
  Value out(type, type);
  out.bytes_ = std::move(bytes);
  return out;
}

Value Value::array_bytes(ValueType element, std::string bytes) {
  Value out(ValueType::Array, element);
  out.bytes_ = std::move(bytes);
  return out;
}

uint64_t Value::array_size() const {
  TS_CHECK(is_array(), "expected an array, got {}", describe());
  if (element_ == ValueType::String) return strings_.size();
  return bytes_.size() / scalar_size(element_);
}

int64_t Value::int_at(ValueType type, const char* p) const {
  switch (type) {
    case ValueType::U8: return load<uint8_t>(p);
    case ValueType::I8: return load<int8_t>(p);
    case ValueType::U16: return load<uint16_t>(p);
    case ValueType::I16: return load<int16_t>(p);
    case ValueType::U32: return load<uint32_t>(p);
    case ValueType::I32: return load<int32_t>(p);
    case ValueType::I64: return load<int64_t>(p);
    case ValueType::U64: {
      const uint64_t v = load<uint64_t>(p);
      TS_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "u64 value {} is too large", v);
      return static_cast<int64_t>(v);
    }
    default: fail("expected an integer, got {}", describe());
  }
}

int64_t Value::as_int() const {
  TS_CHECK(is_integer(type_), "expected an integer, got {}", describe());
  return int_at(type_, bytes_.data());
}

double Value::as_float() const {
  TS_CHECK(type_ == ValueType::F32 || type_ == ValueType::F64, "expected a float, got {}", describe());
  return float_at(type_, bytes_.data());
}

bool Value::as_bool() const {
  TS_CHECK(type_ == ValueType::Bool, "expected a bool, got {}", describe());
  return bytes_[0] != 0;
}

const std::string& Value::as_string() const {
  TS_CHECK(type_ == ValueType::String, "expected a string, got {}", describe());
  return strings_[0];
}

const std::vector<std::string>& Value::as_strings() const {
  TS_CHECK(is_array() && element_ == ValueType::String, "expected an array of strings, got {}", describe());
  return strings_;
}

std::vector<int64_t> Value::as_ints() const {
  TS_CHECK(is_array() && is_integer(element_), "expected an array of integers, got {}", describe());
  const size_t size = scalar_size(element_);
  std::vector<int64_t> out(bytes_.size() / size);
  for (size_t i = 0; i < out.size(); ++i) out[i] = int_at(element_, bytes_.data() + i * size);
  return out;
}

std::vector<double> Value::as_floats() const {
  TS_CHECK(is_array() && (element_ == ValueType::F32 || element_ == ValueType::F64),
           "expected an array of floats, got {}", describe());
  const size_t size = scalar_size(element_);
  std::vector<double> out(bytes_.size() / size);
  for (size_t i = 0; i < out.size(); ++i) out[i] = float_at(element_, bytes_.data() + i * size);
  return out;
}

std::string Value::describe() const {
  if (!is_array()) return std::string(value_type_name(type_));
  return fmt::format("array of {} {}", array_size(), value_type_name(element_));
}

}  // namespace tessera::gguf
