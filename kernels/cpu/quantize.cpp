// CPU reference for quantize and dequantize: each scheme's definition (kernels/quant_math.h)
// applied element by element in fp32.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"
#include "kernels/quant_math.h"

namespace tessera::cpu {

namespace qm = quant_math;

namespace {

constexpr int64_t kParallelAbove = 1 << 14;

float absmax_of(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

void quantize_nf4(const PackedTensor& out, const float* x) {
  const qm::Nf4Tables& tables = qm::nf4_tables();
  const int64_t n = out.numel(), blocks = out.parts[1].numel(), scales = out.parts[2].numel();
  uint8_t* codes = out.parts[0].data_as<uint8_t>();
  std::vector<float> absmax(blocks);
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * qm::kNf4Block, len = std::min<int64_t>(qm::kNf4Block, n - begin);
    absmax[b] = absmax_of(x + begin, len);
    const float inverse = 1.0f / absmax[b];  // inf for an all-zero block, as bitsandbytes has it
    // The padding of an odd count is 0.0, quantized like the block's other values.
    auto code = [&](int64_t i) { return qm::nf4_index(qm::mul_rn(i < n ? x[i] : 0.0f, inverse), tables.thresholds); };
    for (int64_t i = begin; i < begin + len; i += 2) codes[i / 2] = uint8_t(code(i) << 4 | code(i + 1));
  }

  const float offset = qm::nf4_absmax_mean(absmax.data(), blocks);
  uint8_t* qabsmax = out.parts[1].data_as<uint8_t>();
  float* scale = out.parts[2].data_as<float>();
  out.parts[3].data_as<float>()[0] = offset;
  for (int64_t c = 0; c < scales; ++c) {
    const int64_t begin = c * qm::kNf4AbsmaxBlock, end = std::min<int64_t>(begin + qm::kNf4AbsmaxBlock, blocks);
    std::vector<float> centred(end - begin);
    for (int64_t b = begin; b < end; ++b) centred[b - begin] = absmax[b] - offset;
    scale[c] = absmax_of(centred.data(), end - begin);
    const float inverse = 1.0f / scale[c];
    for (int64_t b = begin; b < end; ++b)
      qabsmax[b] = qm::dynamic_index(qm::mul_rn(centred[b - begin], inverse), tables.dynamic);
  }
}

void dequantize_nf4(float* out, const PackedTensor& w) {
  const qm::Nf4Tables& tables = qm::nf4_tables();
  const int64_t n = w.numel();
  const uint8_t* codes = w.parts[0].data_as<uint8_t>();
  const uint8_t* qabsmax = w.parts[1].data_as<uint8_t>();
  const float* scale = w.parts[2].data_as<float>();
  const float offset = w.parts[3].data_as<float>()[0];
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t b = 0; b < w.parts[1].numel(); ++b) {
    const float absmax = qm::nf4_absmax(qabsmax[b], scale[b / qm::kNf4AbsmaxBlock], offset, tables.dynamic);
    for (int64_t i = b * qm::kNf4Block; i < std::min<int64_t>(n, (b + 1) * qm::kNf4Block); ++i) {
      const uint8_t byte = codes[i / 2];
      out[i] = qm::mul_rn(tables.nf4[i % 2 == 0 ? byte >> 4 : byte & 15], absmax);
    }
  }
}

void quantize_int8(const PackedTensor& out, const float* x) {
  const int64_t rows = out.shape[0], cols = out.shape[1];
  int8_t* codes = out.parts[0].data_as<int8_t>();
  float* scales = out.parts[1].data_as<float>();
#pragma omp parallel for if (rows * cols > kParallelAbove)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    scales[r] = qm::int8_scale(absmax_of(row, cols));
    const float inverse = qm::inverse_or_zero(scales[r]);
    for (int64_t c = 0; c < cols; ++c) codes[r * cols + c] = qm::int8_code(row[c], inverse);
  }
}

void dequantize_int8(float* out, const PackedTensor& w) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int8_t* codes = w.parts[0].data_as<int8_t>();
  const float* scales = w.parts[1].data_as<float>();
#pragma omp parallel for if (rows * cols > kParallelAbove)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = qm::mul_rn(float(codes[r * cols + c]), scales[r]);
}

// One int4 group's parameters, as quantize and the QAT mask both need them.
struct Int4Group {
  uint16_t scale;  // f16 bits
  float inverse;
  uint8_t zero;
};

Int4Group int4_group(const float* v, int64_t group, bool symmetric) {
  const auto [low, high] = std::minmax_element(v, v + group);
  const uint16_t scale = f32_to_f16_bits(qm::int4_scale(*low, *high, symmetric));
  const float inverse = qm::inverse_or_zero(f16_bits_to_f32(scale));
  return {scale, inverse, symmetric ? uint8_t(8) : qm::int4_zero(*low, inverse)};
}

void quantize_int4(const PackedTensor& out, const float* x) {
  const int64_t group = out.spec.group_size, groups = out.parts[1].numel();
  uint8_t* codes = out.parts[0].data_as<uint8_t>();
  uint16_t* scales = out.parts[1].data_as<uint16_t>();
  uint8_t* zeros = out.spec.symmetric ? nullptr : out.parts[2].data_as<uint8_t>();
#pragma omp parallel for if (out.numel() > kParallelAbove)
  for (int64_t g = 0; g < groups; ++g) {
    const float* v = x + g * group;  // groups tile each row, and rows are contiguous
    const Int4Group p = int4_group(v, group, out.spec.symmetric);
    scales[g] = p.scale;
    if (zeros) zeros[g] = p.zero;
    for (int64_t i = 0; i < group; i += 2)
      codes[(g * group + i) / 2] = uint8_t(qm::int4_code(v[i], p.inverse, p.zero) << 4 |
                                           qm::int4_code(v[i + 1], p.inverse, p.zero));
  }
}

void dequantize_int4(float* out, const PackedTensor& w) {
  const int64_t group = w.spec.group_size, groups = w.parts[1].numel();
  const uint8_t* codes = w.parts[0].data_as<uint8_t>();
  const uint16_t* scales = w.parts[1].data_as<uint16_t>();
  const uint8_t* zeros = w.spec.symmetric ? nullptr : w.parts[2].data_as<uint8_t>();
#pragma omp parallel for if (w.numel() > kParallelAbove)
  for (int64_t g = 0; g < groups; ++g) {
    const float scale = f16_bits_to_f32(scales[g]);
    const uint8_t zero = zeros ? zeros[g] : 8;
    for (int64_t i = g * group; i < (g + 1) * group; ++i) {
      const uint8_t byte = codes[i / 2];
      out[i] = qm::int4_value(i % 2 == 0 ? byte >> 4 : byte & 15, zero, scale);
    }
  }
}

// ggml records: the f16 scale, little-endian, at the start (records are 2-byte aligned).
uint16_t& record_scale(uint8_t* record) { return *reinterpret_cast<uint16_t*>(record); }
float record_scale_f32(const uint8_t* record) { return f16_bits_to_f32(*reinterpret_cast<const uint16_t*>(record)); }

void quantize_q8_0(const PackedTensor& out, const float* x) {
  const int64_t blocks = out.numel() / qm::kGgmlBlock;
  uint8_t* records = out.parts[0].data_as<uint8_t>();
#pragma omp parallel for if (out.numel() > kParallelAbove)
  for (int64_t b = 0; b < blocks; ++b) {
    const float* v = x + b * qm::kGgmlBlock;
    uint8_t* record = records + b * qm::kQ8_0Bytes;
    const float d = qm::q8_0_scale(absmax_of(v, qm::kGgmlBlock)), inverse = qm::inverse_or_zero(d);
    record_scale(record) = f32_to_f16_bits(d);
    for (int j = 0; j < qm::kGgmlBlock; ++j) record[2 + j] = uint8_t(qm::q8_0_code(v[j], inverse));
  }
}

void dequantize_q8_0(float* out, const PackedTensor& w) {
  const int64_t blocks = w.numel() / qm::kGgmlBlock;
  const uint8_t* records = w.parts[0].data_as<uint8_t>();
#pragma omp parallel for if (w.numel() > kParallelAbove)
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* record = records + b * qm::kQ8_0Bytes;
    const float d = record_scale_f32(record);
    for (int j = 0; j < qm::kGgmlBlock; ++j) out[b * qm::kGgmlBlock + j] = qm::mul_rn(float(int8_t(record[2 + j])), d);
  }
}

// Byte j of a q4_0 record holds element j in its low nibble and element j + 16 in its high one.
// The fp32 scale of a q4_0 block: m / -8, m the first element of largest magnitude.
float q4_0_block_scale(const float* v) {
  float amax = 0.0f, m = 0.0f;
  for (int j = 0; j < qm::kGgmlBlock; ++j)
    if (amax < std::fabs(v[j])) {
      amax = std::fabs(v[j]);
      m = v[j];
    }
  return qm::q4_0_scale(m);
}

void quantize_q4_0(const PackedTensor& out, const float* x) {
  const int64_t blocks = out.numel() / qm::kGgmlBlock;
  uint8_t* records = out.parts[0].data_as<uint8_t>();
#pragma omp parallel for if (out.numel() > kParallelAbove)
  for (int64_t b = 0; b < blocks; ++b) {
    const float* v = x + b * qm::kGgmlBlock;
    uint8_t* record = records + b * qm::kQ4_0Bytes;
    const float d = q4_0_block_scale(v), inverse = qm::inverse_or_zero(d);
    record_scale(record) = f32_to_f16_bits(d);
    for (int j = 0; j < qm::kGgmlBlock / 2; ++j)
      record[2 + j] = uint8_t(qm::q4_0_code(v[j], inverse) | qm::q4_0_code(v[j + qm::kGgmlBlock / 2], inverse) << 4);
  }
}

void dequantize_q4_0(float* out, const PackedTensor& w) {
  const int64_t blocks = w.numel() / qm::kGgmlBlock;
  const uint8_t* records = w.parts[0].data_as<uint8_t>();
#pragma omp parallel for if (w.numel() > kParallelAbove)
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* record = records + b * qm::kQ4_0Bytes;
    const float d = record_scale_f32(record);
    float* o = out + b * qm::kGgmlBlock;
    for (int j = 0; j < qm::kGgmlBlock / 2; ++j) {
      o[j] = qm::q4_0_value(record[2 + j] & 15, d);
      o[j + qm::kGgmlBlock / 2] = qm::q4_0_value(record[2 + j] >> 4, d);
    }
  }
}

}  // namespace

void quantize_mask(const Tensor& grad, const Tensor& w, const QuantSpec& spec) {
  F32In in(w);
  const float* x = in.data();
  float* g = grad.data_as<float>();
  const int64_t n = w.numel(), group = spec.group_size;
  if (spec.scheme == QuantScheme::Int4) {
#pragma omp parallel for if (n > kParallelAbove)
    for (int64_t first = 0; first < n; first += group) {
      const Int4Group p = int4_group(x + first, group, spec.symmetric);
      for (int64_t i = first; i < first + group; ++i) {
        const float u = qm::int4_unclamped(x[i], p.inverse, p.zero);
        if (u < 0.0f || u > 15.0f) g[i] = 0.0f;
      }
    }
  } else if (spec.scheme == QuantScheme::Q4_0) {
#pragma omp parallel for if (n > kParallelAbove)
    for (int64_t first = 0; first < n; first += qm::kGgmlBlock) {
      const float inverse = qm::inverse_or_zero(q4_0_block_scale(x + first));
      for (int64_t i = first; i < first + qm::kGgmlBlock; ++i)
        if (qm::q4_0_unclamped(x[i], inverse) > 15) g[i] = 0.0f;
    }
  }
}

void fake_quantize_rows_int8(const Tensor& out, const Tensor& x) {
  F32In in(x);
  F32Out values(out, false);
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
#pragma omp parallel for if (x.numel() > kParallelAbove)
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = in.data() + r * cols;
    const auto [low, high] = std::minmax_element(v, v + cols);
    const float scale = qm::act8_scale(*low, *high), inverse = qm::inverse_or_zero(scale);
    const int zero = qm::act8_zero(*low, inverse);
    for (int64_t c = 0; c < cols; ++c) values.data()[r * cols + c] = qm::act8_value(v[c], scale, inverse, zero);
  }
  values.commit();
}

void quantize(const PackedTensor& out, const Tensor& x) {
  F32In in(x);
  switch (out.spec.scheme) {
    case QuantScheme::NF4: return quantize_nf4(out, in.data());
    case QuantScheme::Int8: return quantize_int8(out, in.data());
    case QuantScheme::Int4: return quantize_int4(out, in.data());
    case QuantScheme::Q8_0: return quantize_q8_0(out, in.data());
    case QuantScheme::Q4_0: return quantize_q4_0(out, in.data());
  }
}

void dequantize(const Tensor& out, const PackedTensor& w) {
  F32Out values(out, false);
  switch (w.spec.scheme) {
    case QuantScheme::NF4: dequantize_nf4(values.data(), w); break;
    case QuantScheme::Int8: dequantize_int8(values.data(), w); break;
    case QuantScheme::Int4: dequantize_int4(values.data(), w); break;
    case QuantScheme::Q8_0: dequantize_q8_0(values.data(), w); break;
    case QuantScheme::Q4_0: dequantize_q4_0(values.data(), w); break;
  }
  values.commit();
}

}  // namespace tessera::cpu
