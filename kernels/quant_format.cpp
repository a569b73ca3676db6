#include "kernels/quant_format.h"

#include <array>

#include "core/error.h"

namespace tessera {

namespace {

constexpr std::array<std::pair<std::string_view, QuantScheme>, 5> kSchemes{{
    {"nf4", QuantScheme::NF4},
    {"int8", QuantScheme::Int8},
    {"int4", QuantScheme::Int4},
    {"q8_0", QuantScheme::Q8_0},
    {"q4_0", QuantScheme::Q4_0},
}};

constexpr int64_t kNf4Block = 64, kNf4AbsmaxBlock = 256, kGgmlBlock = 32;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t align_up(int64_t bytes) { return ceil_div(bytes, kPackedAlign) * kPackedAlign; }

int64_t default_group(QuantScheme scheme, const Shape& shape) {
  switch (scheme) {
    case QuantScheme::NF4: return kNf4Block;
    case QuantScheme::Int8: return shape.size() == 2 ? shape[1] : 0;
    case QuantScheme::Int4: return 32;
    case QuantScheme::Q8_0:
    case QuantScheme::Q4_0: return kGgmlBlock;
  }
  return 0;
}

}  // namespace

std::string_view quant_scheme_name(QuantScheme scheme) {
  for (const auto& [name, s] : kSchemes)
    if (s == scheme) return name;
  return "?";
}

QuantScheme parse_quant_scheme(std::string_view name) {
  for (const auto& [n, s] : kSchemes)
    if (n == name) return s;
  fail("unknown quantization scheme '{}' (expected one of nf4, int8, int4, q8_0, q4_0)", name);
}

QuantSpec resolve_quant_spec(QuantSpec spec, const Shape& shape) {
  const std::string_view name = quant_scheme_name(spec.scheme);
  const int64_t fixed = default_group(spec.scheme, shape);
  if (spec.group_size == 0) spec.group_size = fixed;
  if (spec.scheme == QuantScheme::NF4) {
    TS_CHECK(spec.group_size == kNf4Block, "nf4 quantizes blocks of {} elements, not {}", kNf4Block, spec.group_size);
    TS_CHECK(spec.symmetric, "nf4 has no asymmetric form");
    TS_CHECK(shape_numel(shape) > 0, "nf4: nothing to quantize in {}", shape_str(shape));
    return spec;
  }
  TS_CHECK(shape.size() == 2 && shape[0] > 0 && shape[1] > 0, "{} quantizes [out, in] matrices, not {}", name,
           shape_str(shape));
  if (spec.scheme == QuantScheme::Int4)
    TS_CHECK(spec.group_size == 32 || spec.group_size == 64 || spec.group_size == 128,
             "int4 groups are 32, 64 or 128 elements, not {}", spec.group_size);
  else
    TS_CHECK(spec.group_size == fixed, "{} groups are {} elements, not {}", name, fixed, spec.group_size);
  TS_CHECK(spec.symmetric || spec.scheme == QuantScheme::Int4, "{} has no asymmetric form", name);
  TS_CHECK(shape[1] % spec.group_size == 0, "{}: rows of {} elements are not a whole number of groups of {}", name,
           shape[1], spec.group_size);
  return spec;
}

std::vector<PackedPartSpec> packed_part_specs(const QuantSpec& given, const Shape& shape) {
  const QuantSpec spec = resolve_quant_spec(given, shape);
  switch (spec.scheme) {
    case QuantScheme::NF4: {
      const int64_t n = shape_numel(shape), blocks = ceil_div(n, kNf4Block);
      return {{"codes", {ceil_div(n, 2)}, DType::U8},
              {"absmax", {blocks}, DType::U8},
              {"absmax_scale", {ceil_div(blocks, kNf4AbsmaxBlock)}, DType::F32},
              {"absmax_offset", {1}, DType::F32}};
    }
    case QuantScheme::Int8: return {{"codes", shape, DType::I8}, {"scales", {shape[0]}, DType::F32}};
    case QuantScheme::Int4: {
      const Shape groups{shape[0], shape[1] / spec.group_size};
      std::vector<PackedPartSpec> parts{{"codes", {shape[0], shape[1] / 2}, DType::U8},
                                        {"scales", groups, DType::F16}};
      if (!spec.symmetric) parts.push_back({"zeros", groups, DType::U8});
      return parts;
    }
    case QuantScheme::Q8_0: return {{"blocks", {shape[0], shape[1] / kGgmlBlock * 34}, DType::U8}};
    case QuantScheme::Q4_0: return {{"blocks", {shape[0], shape[1] / kGgmlBlock * 18}, DType::U8}};
  }
  fail("unknown quantization scheme {}", static_cast<int>(spec.scheme));
}

int64_t packed_bytes(const QuantSpec& spec, const Shape& shape) {
  int64_t bytes = 0;
  for (const PackedPartSpec& part : packed_part_specs(spec, shape))
    bytes += align_up(shape_numel(part.shape) * static_cast<int64_t>(dtype_size(part.dtype)));
  return bytes;
}

PackedTensor PackedTensor::empty(const QuantSpec& spec, const Shape& shape, Device device) {
  return view(spec, shape, Tensor::empty({packed_bytes(spec, shape)}, DType::U8, device));
}

PackedTensor PackedTensor::view(const QuantSpec& spec, const Shape& shape, const Tensor& bytes) {
  const int64_t need = packed_bytes(spec, shape);
  TS_CHECK(bytes.dtype() == DType::U8 && bytes.numel() == need, "packed {}{}: expected u8[{}] bytes, got {}",
           quant_scheme_name(spec.scheme), shape_str(shape), need, bytes.str());
  TS_CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % kPackedAlign == 0,
           "packed {}{}: the bytes must start at a multiple of {}", quant_scheme_name(spec.scheme), shape_str(shape),
           kPackedAlign);
  PackedTensor packed{resolve_quant_spec(spec, shape), shape, {}};
  int64_t offset = 0;
  for (const PackedPartSpec& part : packed_part_specs(spec, shape)) {
    packed.parts.push_back(Tensor::wrap(static_cast<char*>(bytes.data()) + offset, part.shape, part.dtype,
                                        bytes.device(), bytes.storage()));
    offset += align_up(packed.parts.back().nbytes());
  }
  return packed;
}

int64_t PackedTensor::nbytes() const {
  int64_t bytes = 0;
  for (const Tensor& t : parts) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

const Tensor& PackedTensor::part(std::string_view name) const {
  const std::vector<PackedPartSpec> specs = packed_part_specs(spec, shape);
  std::string names;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].name == name) return parts.at(i);
    names += (i ? ", " : "") + std::string(specs[i].name);
  }
  fail("{} has no part '{}' (its parts: {})", str(), name, names);
}

PackedTensor PackedTensor::to(Device device) const {
  PackedTensor out = empty(spec, shape, device);
  for (size_t i = 0; i < parts.size(); ++i) copy_bytes(out.parts[i], parts[i]);
  return out;
}

std::string PackedTensor::str() const {
  return std::string(quant_scheme_name(spec.scheme)) + shape_str(shape) +
         (defined() ? " " + device().str() : std::string(" (empty)"));
}

}  // namespace tessera
