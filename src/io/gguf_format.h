// The GGUF v3 container of llama.cpp (ggml/docs/gguf.md): the tensor types Tessera reads and
// writes, metadata value types, and Value, one typed metadata value. Everything in a file is
// little-endian. Tensor shapes are given in our row-major order (outermost first, as Tensor
// does); a file stores them reversed (ne[0] = the contiguous dimension).
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace tessera::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF files are little-endian");

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// ggml_type ids of the tensor types Tessera handles.
enum class TensorType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, BF16 = 30 };

struct TensorTypeInfo {
  TensorType type;
  std::string_view name;  // "f32", "q8_0", ...
  int64_t block_elements;
  int64_t block_bytes;
};

// nullptr for a ggml type Tessera does not handle.
const TensorTypeInfo* find_tensor_type(uint32_t id);
const TensorTypeInfo& tensor_type_info(TensorType type);
// Parses "f32", "f16", "bf16", "q8_0", "q4_0".
TensorType parse_tensor_type(std::string_view name);
// Bytes of a tensor of `shape`: its rows (the last dimension) must be whole blocks.
uint64_t tensor_bytes(TensorType type, const Shape& shape);

// general.file_type (llama_ftype) of a file whose large matrices are `type`.
uint32_t file_type_of(TensorType type);

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType type);
// Bytes of one scalar of `type`; 0 for String and Array.
size_t scalar_size(ValueType type);
bool is_valid_value_type(uint32_t id);

// One metadata value: a scalar, a string, or an array of scalars or strings (the only arrays
// llama.cpp writes; arrays of arrays are refused). Numeric payloads are kept as their
// little-endian bytes, exactly as in the file.
class Value {
 public:
  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value string(std::string v);
  static Value strings(std::vector<std::string> v);
  static Value i32s(const std::vector<int32_t>& v);
  static Value f32s(const std::vector<float>& v);
  // From parts already validated by a reader: a scalar's bytes, or an array's scalars back to back.
  static Value scalar_bytes(ValueType type, std::string bytes);
  static Value array_bytes(ValueType element, std::string bytes);

  ValueType type() const { return type_; }
  ValueType element_type() const { return element_; }  // arrays only
  bool is_array() const { return type_ == ValueType::Array; }
  uint64_t array_size() const;

  // Checked accessors: a value of another type is an Error saying what it is.
  int64_t as_int() const;      // any integer scalar (a u64 above INT64_MAX is an error)
  double as_float() const;     // f32 or f64
  bool as_bool() const;
  const std::string& as_string() const;
  const std::vector<std::string>& as_strings() const;  // string arrays
  std::vector<int64_t> as_ints() const;                // integer arrays
  std::vector<double> as_floats() const;               // f32 / f64 arrays

  // For writers: the payload after the type (and, for arrays, element type and count).
  const std::string& numeric_bytes() const { return bytes_; }
  const std::vector<std::string>& string_items() const { return strings_; }

  std::string describe() const;  // "u32", "array of 5 string", ...

 private:
  Value(ValueType type, ValueType element) : type_(type), element_(element) {}
  int64_t int_at(ValueType type, const char* p) const;

  ValueType type_;
  ValueType element_;
  std::string bytes_;                 // numeric scalar or numeric array payload
  std::vector<std::string> strings_;  // the string, or the string array's items
};

}  // namespace tessera::gguf
