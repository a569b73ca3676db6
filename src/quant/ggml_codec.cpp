#include "quant/ggml_codec.h"

#include "core/error.h"
#include "kernels/ops.h"
#include "quant/packed.h"

namespace tessera::ggml {

namespace {

using gguf::TensorType;

bool is_block_type(TensorType t) { return t == TensorType::Q8_0 || t == TensorType::Q4_0; }

DType float_dtype(TensorType t) {
  switch (t) {
    case TensorType::F32: return DType::F32;
    case TensorType::F16: return DType::F16;
    case TensorType::BF16: return DType::BF16;
    default: fail("GGUF type {} is not a float type", gguf::tensor_type_info(t).name);
  }
}

// A matrix of the tensor's rows: the shape the block schemes quantize.
Shape as_rows(const Shape& shape) { return {shape_numel(shape) / shape.back(), shape.back()}; }

QuantSpec spec_of(TensorType t) { return {t == TensorType::Q8_0 ? QuantScheme::Q8_0 : QuantScheme::Q4_0}; }

}  // namespace

Tensor encode(const Tensor& x, TensorType type) {
  const uint64_t bytes = gguf::tensor_bytes(type, x.shape());
  if (!is_block_type(type)) {
    const Tensor typed = ops::cast(x, float_dtype(type));
    return Tensor::wrap(typed.data(), {static_cast<int64_t>(bytes)}, DType::U8, typed.device(), typed.storage());
  }
  const PackedTensor packed = quant::quantize(x.view(as_rows(x.shape())), spec_of(type));
  TS_CHECK(packed.parts.size() == 1 && packed.parts[0].nbytes() == bytes, "{} records of {} are not {} bytes",
           gguf::tensor_type_info(type).name, shape_str(x.shape()), bytes);
  return packed.parts[0].view({static_cast<int64_t>(bytes)});
}

Tensor decode(const Tensor& bytes, const Shape& shape, TensorType type) {
  if (is_block_type(type)) return quant::dequantize(packed_view(bytes, shape, type), DType::F32).view(shape);
  const Tensor typed = Tensor::wrap(bytes.data(), shape, float_dtype(type), bytes.device(), bytes.storage());
  return ops::cast(typed, DType::F32).clone();
}

PackedTensor packed_view(const Tensor& bytes, const Shape& shape, TensorType type) {
  TS_CHECK(is_block_type(type), "GGUF type {} is not a block type", gguf::tensor_type_info(type).name);
  const uint64_t need = gguf::tensor_bytes(type, shape);
  TS_CHECK(bytes.dtype() == DType::U8 && bytes.numel() == static_cast<int64_t>(need),
           "{}{} needs u8[{}], got {}", gguf::tensor_type_info(type).name, shape_str(shape), need, bytes.str());
  const Shape rows = as_rows(shape);
  const QuantSpec spec = resolve_quant_spec(spec_of(type), rows);
  const Shape part = packed_part_specs(spec, rows)[0].shape;
  return PackedTensor{spec, rows, {bytes.view(part)}};
}

}  // namespace tessera::ggml
