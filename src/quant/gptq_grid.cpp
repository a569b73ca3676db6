#include "quant/gptq_grid.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/quant_math.h"

namespace tessera::quant {

namespace qm = quant_math;

ColumnGrid::ColumnGrid(const QuantSpec& spec, int64_t rows, int64_t cols)
    : spec_(resolve_quant_spec(spec, {rows, cols})), rows_(rows), cols_(cols) {
  TS_CHECK(spec_.scheme != QuantScheme::NF4, "gptq: nf4 is not a grid GPTQ quantizes (int8, int4, q8_0 or q4_0)");
  groups_ = cols / spec_.group_size;
  codes_.assign(static_cast<size_t>(rows * cols), 0);
  scale_.assign(static_cast<size_t>(rows * groups_), 0.0f);
  inverse_.assign(scale_.size(), 0.0f);
  zero_.assign(scale_.size(), 8);
}

void ColumnGrid::choose(int64_t row, int64_t group, const float* v) {
  const int64_t n = spec_.group_size;
  const size_t at = static_cast<size_t>(row * groups_ + group);
  float amax = 0.0f, m = 0.0f;  // m: the first value of largest magnitude, with its sign (q4_0)
  for (int64_t k = 0; k < n; ++k)
    if (amax < std::fabs(v[k])) amax = std::fabs(v[k]), m = v[k];
  switch (spec_.scheme) {
    case QuantScheme::Int8:
      scale_[at] = qm::int8_scale(amax);
      inverse_[at] = qm::inverse_or_zero(scale_[at]);
      break;
    case QuantScheme::Int4: {
      const auto [low, high] = std::minmax_element(v, v + n);
      scale_[at] = f16_bits_to_f32(f32_to_f16_bits(qm::int4_scale(*low, *high, spec_.symmetric)));
      inverse_[at] = qm::inverse_or_zero(scale_[at]);
      zero_[at] = spec_.symmetric ? uint8_t(8) : qm::int4_zero(*low, inverse_[at]);
      break;
    }
    case QuantScheme::Q8_0:
    case QuantScheme::Q4_0: {
      // Codes use the fp32 d; dequantization the stored f16 one.
      const float d = spec_.scheme == QuantScheme::Q8_0 ? qm::q8_0_scale(amax) : qm::q4_0_scale(m);
      inverse_[at] = qm::inverse_or_zero(d);
      scale_[at] = f16_bits_to_f32(f32_to_f16_bits(d));
      break;
    }
    case QuantScheme::NF4: break;  // refused by the constructor
  }
}

float ColumnGrid::round(int64_t row, int64_t col, float x) {
  const size_t at = static_cast<size_t>(row * groups_ + col / spec_.group_size);
  uint8_t& code = codes_[static_cast<size_t>(row * cols_ + col)];
  const float inverse = inverse_[at], scale = scale_[at];
  switch (spec_.scheme) {
    case QuantScheme::Int8: {
      const int8_t q = qm::int8_code(x, inverse);
      code = static_cast<uint8_t>(q);
      return qm::mul_rn(float(q), scale);
    }
    case QuantScheme::Int4:
      code = qm::int4_code(x, inverse, zero_[at]);
      return qm::int4_value(code, zero_[at], scale);
    case QuantScheme::Q8_0: {
      const int8_t q = static_cast<int8_t>(std::clamp(roundf(qm::mul_rn(x, inverse)), -127.0f, 127.0f));
      code = static_cast<uint8_t>(q);
      return qm::mul_rn(float(q), scale);
    }
    case QuantScheme::Q4_0:
      // q4_0_unclamped truncates toward zero; below -1 it would go negative, so clamp both ends.
      code = static_cast<uint8_t>(std::clamp(qm::q4_0_unclamped(x, inverse), 0, 15));
      return qm::q4_0_value(code, scale);
    case QuantScheme::NF4: break;
  }
  return 0.0f;
}

PackedTensor ColumnGrid::pack() const {
  PackedTensor out = PackedTensor::empty(spec_, {rows_, cols_});
  const int64_t n = spec_.group_size;
  auto code = [&](int64_t r, int64_t c) { return codes_[static_cast<size_t>(r * cols_ + c)]; };
  auto at = [&](int64_t r, int64_t g) { return static_cast<size_t>(r * groups_ + g); };
  switch (spec_.scheme) {
    case QuantScheme::Int8:
      std::copy(codes_.begin(), codes_.end(), out.parts[0].data_as<uint8_t>());
      std::copy(scale_.begin(), scale_.end(), out.parts[1].data_as<float>());
      break;
    case QuantScheme::Int4: {
      uint8_t* codes = out.parts[0].data_as<uint8_t>();  // high nibble first
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t c = 0; c < cols_; c += 2) codes[(r * cols_ + c) / 2] = uint8_t(code(r, c) << 4 | code(r, c + 1));
      uint16_t* scales = out.parts[1].data_as<uint16_t>();
      for (size_t i = 0; i < scale_.size(); ++i) scales[i] = f32_to_f16_bits(scale_[i]);
      if (!spec_.symmetric) std::copy(zero_.begin(), zero_.end(), out.parts[2].data_as<uint8_t>());
      break;
    }
    case QuantScheme::Q8_0:
    case QuantScheme::Q4_0: {
      const bool q8 = spec_.scheme == QuantScheme::Q8_0;
      const int64_t bytes = q8 ? qm::kQ8_0Bytes : qm::kQ4_0Bytes;
      uint8_t* records = out.parts[0].data_as<uint8_t>();
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t g = 0; g < groups_; ++g) {
          uint8_t* record = records + (r * groups_ + g) * bytes;
          const uint16_t d = f32_to_f16_bits(scale_[at(r, g)]);  // little-endian, as ggml
          record[0] = uint8_t(d & 0xff), record[1] = uint8_t(d >> 8);
          if (q8) {
            for (int64_t k = 0; k < n; ++k) record[2 + k] = code(r, g * n + k);
          } else {  // byte k: element k in the low nibble, element k + 16 in the high one
            for (int64_t k = 0; k < n / 2; ++k)
              record[2 + k] = uint8_t(code(r, g * n + k) | code(r, g * n + k + n / 2) << 4);
          }
        }
      break;
    }
    case QuantScheme::NF4: break;
  }
  return out;
}

}  // namespace tessera::quant
