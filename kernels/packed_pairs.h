// A unit of packed weights (kernels/packed_units.h: 16 weights of one scale and zero) as 8 pairs
// of 16-bit floats (bf16 or f16, the low half the first of the pair): what the tensor-core gemv
// (kernels/cuda/gemv_packed_mma.cu) feeds mma.sync, each weight (code - zero) * scale rounded to
// the 16-bit type as dequantize rounds it. The unpacking is a few integer ops per pair, not a
// conversion per weight: nibbles go straight into the mantissa of a 16-bit float ("magic
// number": (w >> s) & 0x000f000f | 0x43004300 is the bf16 pair 128 + q, 0x64006400 the f16 pair
// 1024 + q), one pair subtraction leaves code - zero exactly and one pair product applies the
// scale; bytes go through fp32 (a 16-bit float cannot hold 256 + byte) and are rounded once.
//
// The pairs come in the order the unpacking finds them, not in column order: a dot product does
// not care, as long as the activations are paired the same way. x_pairs does that from the 16
// activations of the unit (its two runs, first(u) and second(u), as 8 registers of pairs).
// tests/unit/test_packed_pairs.cpp checks on the host that every pair meets its own activation.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/host_device.h"
#include "kernels/packed_units.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace tessera::packed_pairs {

namespace pu = packed_units;

constexpr int kPairs = pu::kUnit / 2;

// __byte_perm's selection (selector nibbles 0-7 only): byte i of the result is byte s_i of the
// eight bytes of {b, a} (a's bytes first).
TS_HOST_DEVICE inline uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t selector) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(a, b, selector);
#else
  const uint64_t both = uint64_t(a) | uint64_t(b) << 32;
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) out |= uint32_t((both >> (8 * ((selector >> (4 * i)) & 7u))) & 255u) << (8 * i);
  return out;
#endif
}

// Two floats as a pair of 16-bit floats, each rounded to nearest even.
template <bool kBf16>
TS_HOST_DEVICE inline uint32_t pack(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  if constexpr (kBf16) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
#else
  if constexpr (kBf16) return uint32_t(f32_to_bf16_bits(lo)) | uint32_t(f32_to_bf16_bits(hi)) << 16;
  else return uint32_t(f32_to_f16_bits(lo)) | uint32_t(f32_to_f16_bits(hi)) << 16;
#endif
}

// The 16-bit float `bits` as a float (host: tests).
template <bool kBf16>
inline float unpack(uint16_t bits) {
  if constexpr (kBf16) return bf16_bits_to_f32(bits);
  else return f16_bits_to_f32(bits);
}

// (v - offset) * scale in each half: the subtraction is exact (small integers), the product
// rounded once, as the 16-bit pair instructions do.
template <bool kBf16>
TS_HOST_DEVICE inline uint32_t sub_mul(uint32_t v, uint32_t offset, uint32_t scale) {
#if defined(__CUDA_ARCH__)
  if constexpr (kBf16) {
    const __nv_bfloat162 r = __hmul2(__hsub2(*reinterpret_cast<const __nv_bfloat162*>(&v),
                                             *reinterpret_cast<const __nv_bfloat162*>(&offset)),
                                     *reinterpret_cast<const __nv_bfloat162*>(&scale));
    return *reinterpret_cast<const uint32_t*>(&r);
  } else {
    const __half2 r = __hmul2(__hsub2(*reinterpret_cast<const __half2*>(&v), *reinterpret_cast<const __half2*>(&offset)),
                              *reinterpret_cast<const __half2*>(&scale));
    return *reinterpret_cast<const uint32_t*>(&r);
  }
#else
  auto half = [](uint32_t p, int i) { return unpack<kBf16>(uint16_t(p >> (16 * i))); };
  return pack<kBf16>((half(v, 0) - half(offset, 0)) * half(scale, 0), (half(v, 1) - half(offset, 1)) * half(scale, 1));
#endif
}

// 8n nibbles in n words (2 or 4) as 4n pairs: word j at shifts 0, 4, 8 and 12 gives pairs 4j to
// 4j + 3, each the nibbles at bits s and 16 + s. `scale` must be representable in the 16-bit type's range.
template <bool kBf16, int kWords>
TS_HOST_DEVICE inline void nibble_pairs(uint32_t (&out)[4 * kWords], const uint32_t (&w)[kWords], float scale,
                                        float zero) {
  constexpr uint32_t kMagic = kBf16 ? 0x43004300u : 0x64006400u;  // 128 or 1024 in each half
  constexpr float kBase = kBf16 ? 128.0f : 1024.0f;
  const uint32_t offset = pack<kBf16>(kBase + zero, kBase + zero), scale2 = pack<kBf16>(scale, scale);
#pragma unroll
  for (int j = 0; j < kWords; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) out[4 * j + i] = sub_mul<kBf16>(((w[j] >> (4 * i)) & 0x000f000fu) | kMagic, offset, scale2);
}

// 16 signed bytes in 4 words as 8 pairs, bytes (0, 1) and (2, 3) of each word, q * scale in fp32
// rounded once.
template <bool kBf16>
TS_HOST_DEVICE inline void byte_pairs(uint32_t (&out)[kPairs], const uint32_t (&w)[4], float scale) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t biased = w[j] ^ 0x80808080u;
    float q[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      q[i] = pu::bits_to_float(byte_perm(biased, pu::kMagic, 0x7440u + unsigned(i))) - (pu::kMagicF + 128.0f);
    out[2 * j] = pack<kBf16>(q[0] * scale, q[1] * scale);
    out[2 * j + 1] = pack<kBf16>(q[2] * scale, q[3] * scale);
  }
}

// The activations paired as each scheme's pairs: x[0..3] hold run first(u) as pairs of
// consecutive elements, x[4..7] run second(u).

// int4 (two elements a byte, the first in the high nibble): word j holds run j (of n runs, 2 or
// 4); its pairs are elements (1, 5), (0, 4), (3, 7), (2, 6).
template <int kRuns>
TS_HOST_DEVICE inline void high_first_x(uint32_t (&b)[4 * kRuns], const uint32_t (&x)[4 * kRuns]) {
#pragma unroll
  for (int j = 0; j < kRuns; ++j) {
    const uint32_t* r = x + 4 * j;
    b[4 * j] = byte_perm(r[0], r[2], 0x7632u);
    b[4 * j + 1] = byte_perm(r[0], r[2], 0x5410u);
    b[4 * j + 2] = byte_perm(r[1], r[3], 0x7632u);
    b[4 * j + 3] = byte_perm(r[1], r[3], 0x5410u);
  }
}

// q4_0 (byte i: element i of run first in the low nibble, of run second in the high one): word
// j's pairs are (first 4j, 4j + 2), (second 4j, 4j + 2), (first 4j + 1, 4j + 3), (second ...).
TS_HOST_DEVICE inline void low_high_x(uint32_t (&b)[kPairs], const uint32_t (&x)[kPairs]) {
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const uint32_t *lo = x + 2 * j, *hi = x + 4 + 2 * j;
    b[4 * j] = byte_perm(lo[0], lo[1], 0x5410u);
    b[4 * j + 1] = byte_perm(hi[0], hi[1], 0x5410u);
    b[4 * j + 2] = byte_perm(lo[0], lo[1], 0x7632u);
    b[4 * j + 3] = byte_perm(hi[0], hi[1], 0x7632u);
  }
}

// Bytes pair consecutive elements: the activations as they are.
TS_HOST_DEVICE inline void in_order_x(uint32_t (&b)[kPairs], const uint32_t (&x)[kPairs]) {
#pragma unroll
  for (int i = 0; i < kPairs; ++i) b[i] = x[i];
}

// Each pair reader: kWeights (16: one unit), Raw (what one unit's loads bring), load(row, u, raw)
// (loads only, so that a kernel can put many in flight before converting), pairs<kBf16>(raw, out),
// run(u, j) (where run j of the unit's kWeights / 8 runs of 8 activations starts) and x_pairs.

// run(u, j) of a reader of 16-weight units: its two runs.
template <typename Reader>
TS_HOST_DEVICE inline int unit_run(int u, int j) {
  return j == 0 ? Reader::first(u) : Reader::second(u);
}

struct Int8Pairs {
  pu::Int8Reader r;
  static constexpr int kWeights = pu::kUnit;
  TS_HOST_DEVICE static int run(int u, int j) { return unit_run<pu::Int8Reader>(u, j); }
  struct Raw {
    uint32_t w[4];
    float scale;
  };
  TS_HOST_DEVICE void load(int64_t row, int u, Raw& raw) const {
    pu::load_words(raw.w, r.codes + row * r.cols + pu::kUnit * u);
    raw.scale = r.scales[row];
  }
  template <bool kBf16>
  TS_HOST_DEVICE static void pairs(const Raw& raw, uint32_t (&out)[kPairs]) {
    byte_pairs<kBf16>(out, raw.w, raw.scale);
  }
  TS_HOST_DEVICE static void x_pairs(uint32_t (&b)[kPairs], const uint32_t (&x)[kPairs]) { in_order_x(b, x); }
};

struct Int4Pairs {
  pu::Int4Reader r;
  static constexpr int kWeights = pu::kUnit;
  TS_HOST_DEVICE static int run(int u, int j) { return unit_run<pu::Int4Reader>(u, j); }
  struct Raw {
    uint32_t w[2];
    uint16_t scale;
    uint8_t zero;
  };
  TS_HOST_DEVICE void load(int64_t row, int u, Raw& raw) const {
    pu::load_words(raw.w, r.codes + row * (r.cols / 2) + 8 * u);
    const int64_t g = row * r.groups + ((pu::kUnit * u) >> r.group_shift);
    raw.scale = r.scales[g];
    raw.zero = r.zeros ? r.zeros[g] : uint8_t(8);
  }
  template <bool kBf16>
  TS_HOST_DEVICE static void pairs(const Raw& raw, uint32_t (&out)[kPairs]) {
    nibble_pairs<kBf16, 2>(out, raw.w, pu::f16_to_float(raw.scale), float(raw.zero));
  }
  TS_HOST_DEVICE static void x_pairs(uint32_t (&b)[kPairs], const uint32_t (&x)[kPairs]) { high_first_x<2>(b, x); }
};

struct Q8_0Pairs {
  pu::Q8_0Reader r;
  static constexpr int kWeights = pu::kUnit;
  TS_HOST_DEVICE static int run(int u, int j) { return unit_run<pu::Q8_0Reader>(u, j); }
  struct Raw {
    uint32_t w[4];
    uint16_t scale;
  };
  TS_HOST_DEVICE void load(int64_t row, int u, Raw& raw) const {
    const uint8_t* record = r.records + (row * (r.cols / quant_math::kGgmlBlock) + u / 2) * quant_math::kQ8_0Bytes;
    pu::load_words_2b(raw.w, record + 2 + pu::kUnit * (u % 2));
    raw.scale = pu::load_u16(record);
  }
  template <bool kBf16>
  TS_HOST_DEVICE static void pairs(const Raw& raw, uint32_t (&out)[kPairs]) {
    byte_pairs<kBf16>(out, raw.w, pu::f16_to_float(raw.scale));
  }
  TS_HOST_DEVICE static void x_pairs(uint32_t (&b)[kPairs], const uint32_t (&x)[kPairs]) { in_order_x(b, x); }
};

struct Q4_0Pairs {
  pu::Q4_0Reader r;
  static constexpr int kWeights = pu::kUnit;
  TS_HOST_DEVICE static int run(int u, int j) { return unit_run<pu::Q4_0Reader>(u, j); }
  struct Raw {
    uint32_t w[2];
    uint16_t scale;
  };
  TS_HOST_DEVICE void load(int64_t row, int u, Raw& raw) const {
    const uint8_t* record = r.records + (row * (r.cols / quant_math::kGgmlBlock) + u / 2) * quant_math::kQ4_0Bytes;
    pu::load_words_2b(raw.w, record + 2 + 8 * (u % 2));
    raw.scale = pu::load_u16(record);
  }
  template <bool kBf16>
  TS_HOST_DEVICE static void pairs(const Raw& raw, uint32_t (&out)[kPairs]) {
    nibble_pairs<kBf16, 2>(out, raw.w, pu::f16_to_float(raw.scale), 8.0f);
  }
  TS_HOST_DEVICE static void x_pairs(uint32_t (&b)[kPairs], const uint32_t (&x)[kPairs]) { low_high_x(b, x); }
};

// int4 read 32 weights at a time (units 2c and 2c + 1, one group: groups are 32, 64 or 128 wide):
// one 16-byte load of codes and one scale (and zero) for 16 pairs, where Int4Pairs needs two of
// each. Its pairs are those of the two units back to back. The codes must be 16-byte aligned and
// cols a multiple of 32 (int4's are, groups dividing the rows).
struct Int4WidePairs {
  pu::Int4Reader r;
  static constexpr int kWeights = 2 * pu::kUnit;
  struct Raw {
    uint32_t w[4];
    uint16_t scale;
    uint8_t zero;
  };
  TS_HOST_DEVICE static int run(int c, int j) { return kWeights * c + 8 * j; }
  TS_HOST_DEVICE void load(int64_t row, int c, Raw& raw) const {
    pu::load_words(raw.w, r.codes + row * (r.cols / 2) + kWeights / 2 * c);
    const int64_t g = row * r.groups + ((kWeights * c) >> r.group_shift);
    raw.scale = r.scales[g];
    raw.zero = r.zeros ? r.zeros[g] : uint8_t(8);
  }
  template <bool kBf16>
  TS_HOST_DEVICE static void pairs(const Raw& raw, uint32_t (&out)[2 * kPairs]) {
    nibble_pairs<kBf16, 4>(out, raw.w, pu::f16_to_float(raw.scale), float(raw.zero));
  }
  TS_HOST_DEVICE static void x_pairs(uint32_t (&b)[2 * kPairs], const uint32_t (&x)[2 * kPairs]) { high_first_x<4>(b, x); }
};

// The pair reader of a unit reader; none for nf4 (its 16-entry code book is no magic number).
inline Int8Pairs pairs_of(const pu::Int8Reader& r) { return {r}; }
inline Int4Pairs pairs_of(const pu::Int4Reader& r) { return {r}; }
inline Q8_0Pairs pairs_of(const pu::Q8_0Reader& r) { return {r}; }
inline Q4_0Pairs pairs_of(const pu::Q4_0Reader& r) { return {r}; }

template <typename Reader>
constexpr bool has_pairs = !std::is_same_v<Reader, pu::Nf4Reader>;

}  // namespace tessera::packed_pairs
