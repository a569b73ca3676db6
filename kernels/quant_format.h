// Quantized weights as the kernels read and write them: a scheme with its parameters
// (QuantSpec), the logical shape, and the parts, plain tensors of codes and scales. Whatever only
// moves bytes (the ZeRO store, offload, checkpoints) handles the parts, or one byte buffer
// holding them all, without knowing the scheme. src/quant/packed.h builds on this.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace tessera {

enum class QuantScheme : uint8_t { NF4, Int8, Int4, Q8_0, Q4_0 };

std::string_view quant_scheme_name(QuantScheme scheme);  // "nf4", "int8", "int4", "q8_0", "q4_0"
// One of those names; anything else throws an Error that lists them.
QuantScheme parse_quant_scheme(std::string_view name);

struct QuantSpec {
  QuantScheme scheme = QuantScheme::Int8;
  // Elements sharing one scale: nf4 64 (blocks of the flattened tensor), q8_0 and q4_0 32, int4
  // 32, 64 or 128 (along each row), int8 the whole row. 0 takes the scheme's default.
  int64_t group_size = 0;
  // int4 only: codes in [-8, 7] around zero, or in [0, 15] with a zero point per group.
  bool symmetric = true;

  bool operator==(const QuantSpec&) const = default;
};

// `spec` with group_size filled in; throws an Error saying why when a tensor of `shape` cannot be
// quantized that way (a scheme for matrices given another rank, a row not a whole number of
// groups, an int4 group other than 32, 64 or 128).
QuantSpec resolve_quant_spec(QuantSpec spec, const Shape& shape);

struct PackedPartSpec {
  std::string_view name;
  Shape shape;
  DType dtype;
};

// The parts of a tensor of `shape` under `spec`, in storage order. For the matrix schemes shape
// is [rows, cols] = [out_features, in_features] and groups = cols / group_size:
//   nf4  codes u8[ceil(n / 2)] (two per byte, the first element in the high nibble),
//        absmax u8[blocks] (each block's absmax, 8-bit), absmax_scale f32[ceil(blocks / 256)],
//        absmax_offset f32[1]                                  (n elements, blocks = ceil(n / 64))
//   int8 codes i8[rows, cols], scales f32[rows]
//   int4 codes u8[rows, cols / 2] (high nibble first; q + 8 when symmetric),
//        scales f16[rows, groups], zeros u8[rows, groups] (asymmetric only)
//   q8_0 blocks u8[rows, cols / 32 * 34], q4_0 blocks u8[rows, cols / 32 * 18] (llama.cpp's
//        block_q8_0 and block_q4_0 records: an f16 scale, then the codes)
std::vector<PackedPartSpec> packed_part_specs(const QuantSpec& spec, const Shape& shape);

// Every part back to back, each starting at a multiple of kPackedAlign bytes.
constexpr int64_t kPackedAlign = 16;
int64_t packed_bytes(const QuantSpec& spec, const Shape& shape);

struct PackedTensor {
  QuantSpec spec;             // resolved (group_size filled in)
  Shape shape;                // the logical, dequantized shape
  std::vector<Tensor> parts;  // as packed_part_specs(spec, shape)

  // Uninitialised parts in one allocation on `device`.
  static PackedTensor empty(const QuantSpec& spec, const Shape& shape, Device device = Device::cpu());
  // Parts as views of `bytes`: u8, packed_bytes(spec, shape) elements, starting at a multiple of
  // kPackedAlign. How a store that moves raw bytes hands out a packed weight.
  static PackedTensor view(const QuantSpec& spec, const Shape& shape, const Tensor& bytes);

  bool defined() const { return !parts.empty(); }
  Device device() const { return parts.at(0).device(); }
  int64_t numel() const { return shape_numel(shape); }
  int64_t nbytes() const;
  // The part of that name; throws an Error naming the scheme's parts.
  const Tensor& part(std::string_view name) const;
  // A copy on `device` (waits until the copy is done).
  PackedTensor to(Device device) const;
  std::string str() const;  // "nf4[4096, 4096] cuda:0"
};

}  // namespace tessera
