// A packed matrix row read 16 elements at a time: a "unit" holds the 16 codes as floats and the
// unit's scale and zero, so that each of its weights is (code - zero) * scale, the very product
// kernels/quant_math.h dequantizes to. The fused gemv (kernels/cuda/gemv_packed.cu) reads weights
// this way, a unit per lane, and multiplies by the activations the unit covers; the host build of
// the same code is what tests/unit/test_packed_units.cpp compares with dequantize for every scheme.
//
// A unit covers two runs of 8 elements of its row: [first(u), first(u) + 8) and
// [second(u), second(u) + 8), codes 0-7 and 8-15. For int8, int4, nf4 and q8_0 they are 16u and
// 16u + 8; q4_0 keeps element j and j + 16 of a block in one byte, so its unit u is half of
// block b = u / 2, h = u % 2: runs 32b + 8h and 32b + 16 + 8h (bytes 8h to 8h + 7 of the block).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/host_device.h"
#include "kernels/quant_format.h"
#include "kernels/quant_math.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace tessera::packed_units {

constexpr int kUnit = 16;

struct Unit {
  float code[kUnit];
  float scale, zero;
};

// Whether a [rows, cols] matrix can be read in units: its rows are a whole number of them (then
// no nf4 unit straddles one of its 64-element blocks either).
// (int4 groups and llama.cpp blocks are whole units already.)
inline bool readable(int64_t cols) { return cols % kUnit == 0; }

TS_HOST_DEVICE inline float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(int(bits));
#else
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

TS_HOST_DEVICE inline float f16_to_float(uint16_t bits) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(bits));
#else
  return f16_bits_to_f32(bits);
#endif
}

// 2^23 + v for v < 2^23 has v in its mantissa: one OR and one subtraction turn small unsigned
// integers into floats (no int-to-float conversion, which is slow on the GPU).
constexpr uint32_t kMagic = 0x4B000000u;
constexpr float kMagicF = 8388608.0f;

// The nibble of w at bit `shift`.
TS_HOST_DEVICE inline float nibble(uint32_t w, int shift) { return bits_to_float(((w >> shift) & 15u) | kMagic) - kMagicF; }

// The signed byte i of w, given w ^ 0x80808080 (each byte biased by 128).
TS_HOST_DEVICE inline float biased_byte(uint32_t biased, int i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(int(__byte_perm(biased, kMagic, 0x7440u + unsigned(i)))) - (kMagicF + 128.0f);
#else
  return bits_to_float(((biased >> (8 * i)) & 255u) | kMagic) - (kMagicF + 128.0f);
#endif
}

// n little-endian 32-bit words from p, which is aligned to 4n bytes (n = 2 or 4) on the GPU.
template <int kN>
TS_HOST_DEVICE inline void load_words(uint32_t (&w)[kN], const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  if constexpr (kN == 4) {
    const uint4 v = __ldcs(reinterpret_cast<const uint4*>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else {
    static_assert(kN == 2);
    const uint2 v = __ldcs(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  }
#else
  std::memcpy(w, p, 4 * kN);
#endif
}

// n words from p, aligned to 2 bytes only (llama.cpp's records), as pairs of 16-bit loads.
template <int kN>
TS_HOST_DEVICE inline void load_words_2b(uint32_t (&w)[kN], const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
#pragma unroll
  for (int i = 0; i < kN; ++i) w[i] = uint32_t(h[2 * i]) | uint32_t(h[2 * i + 1]) << 16;
}

TS_HOST_DEVICE inline uint16_t load_u16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// 16 signed bytes held in 4 words.
TS_HOST_DEVICE inline void signed_bytes(float (&code)[kUnit], const uint32_t (&w)[4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t biased = w[j] ^ 0x80808080u;
#pragma unroll
    for (int i = 0; i < 4; ++i) code[4 * j + i] = biased_byte(biased, i);
  }
}

// 16 nibbles in 2 words, two per byte with the first element in the high nibble (int4, nf4).
TS_HOST_DEVICE inline void high_first_nibbles(float (&code)[kUnit], const uint32_t (&w)[2]) {
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      code[8 * j + 2 * i] = nibble(w[j], 8 * i + 4);
      code[8 * j + 2 * i + 1] = nibble(w[j], 8 * i);
    }
}

// Each reader: first(u), second(u) and load(row, u, unit). Rows have `cols` elements.

struct Int8Reader {
  const uint8_t* codes;  // i8[rows, cols]
  const float* scales;   // f32[rows]
  int64_t cols;

  TS_HOST_DEVICE static int first(int u) { return kUnit * u; }
  TS_HOST_DEVICE static int second(int u) { return kUnit * u + 8; }
  TS_HOST_DEVICE void load(int64_t row, int u, Unit& out) const {
    uint32_t w[4];
    load_words(w, codes + row * cols + kUnit * u);
    signed_bytes(out.code, w);
    out.scale = scales[row];
    out.zero = 0.0f;
  }
};

struct Int4Reader {
  const uint8_t* codes;    // u8[rows, cols / 2]
  const uint16_t* scales;  // f16[rows, groups]
  const uint8_t* zeros;    // u8[rows, groups]; null: symmetric (zero 8)
  int64_t cols;
  int groups;       // per row: cols / group
  int group_shift;  // log2(group): groups of 32, 64 or 128 (no division per unit)

  TS_HOST_DEVICE static int first(int u) { return kUnit * u; }
  TS_HOST_DEVICE static int second(int u) { return kUnit * u + 8; }
  TS_HOST_DEVICE void load(int64_t row, int u, Unit& out) const {
    uint32_t w[2];
    load_words(w, codes + row * (cols / 2) + 8 * u);
    high_first_nibbles(out.code, w);
    const int64_t g = row * groups + ((kUnit * u) >> group_shift);
    out.scale = f16_to_float(scales[g]);
    out.zero = zeros ? float(zeros[g]) : 8.0f;
  }
};

struct Nf4Reader {
  const uint8_t* codes;    // u8[n / 2] over the flattened matrix
  const uint8_t* qabsmax;  // u8[blocks of 64]
  const float* absmax_scale;
  const float* absmax_offset;
  const quant_math::Nf4Tables* tables;
  int64_t cols;

  TS_HOST_DEVICE static int first(int u) { return kUnit * u; }
  TS_HOST_DEVICE static int second(int u) { return kUnit * u + 8; }
  TS_HOST_DEVICE void load(int64_t row, int u, Unit& out) const {
    const int64_t e = row * cols + kUnit * u;
    uint32_t w[2];
    load_words(w, codes + e / 2);
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        out.code[8 * j + 2 * i] = tables->nf4[(w[j] >> (8 * i + 4)) & 15u];
        out.code[8 * j + 2 * i + 1] = tables->nf4[(w[j] >> (8 * i)) & 15u];
      }
    const int64_t b = e / quant_math::kNf4Block;
    out.scale = quant_math::nf4_absmax(qabsmax[b], absmax_scale[b / quant_math::kNf4AbsmaxBlock], *absmax_offset,
                                       tables->dynamic);
    out.zero = 0.0f;
  }
};

struct Q8_0Reader {
  const uint8_t* records;  // block_q8_0[rows, cols / 32]
  int64_t cols;

  TS_HOST_DEVICE static int first(int u) { return kUnit * u; }
  TS_HOST_DEVICE static int second(int u) { return kUnit * u + 8; }
  TS_HOST_DEVICE void load(int64_t row, int u, Unit& out) const {
    const uint8_t* record = records + (row * (cols / quant_math::kGgmlBlock) + u / 2) * quant_math::kQ8_0Bytes;
    uint32_t w[4];
    load_words_2b(w, record + 2 + kUnit * (u % 2));
    signed_bytes(out.code, w);
    out.scale = f16_to_float(load_u16(record));
    out.zero = 0.0f;
  }
};

struct Q4_0Reader {
  const uint8_t* records;  // block_q4_0[rows, cols / 32]
  int64_t cols;

  TS_HOST_DEVICE static int first(int u) { return 32 * (u / 2) + 8 * (u % 2); }
  TS_HOST_DEVICE static int second(int u) { return 32 * (u / 2) + 16 + 8 * (u % 2); }
  TS_HOST_DEVICE void load(int64_t row, int u, Unit& out) const {
    const uint8_t* record = records + (row * (cols / quant_math::kGgmlBlock) + u / 2) * quant_math::kQ4_0Bytes;
    uint32_t w[2];
    load_words_2b(w, record + 2 + 8 * (u % 2));
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        out.code[4 * j + i] = nibble(w[j], 8 * i);          // element j of the block: the low nibble
        out.code[8 + 4 * j + i] = nibble(w[j], 8 * i + 4);  // element j + 16: the high one
      }
    out.scale = f16_to_float(load_u16(record));
    out.zero = 8.0f;
  }
};

// Runs of 8 elements of a row (run r: elements 8r to 8r + 7) read by themselves, int4 and int8:
// fetch(row, r, raw) only loads (one word of int4 codes and its group's scale and zero, or two
// words of int8 codes and the row's scale), so that a kernel can put many in flight, and
// values(raw, out) gives each (code - zero) * scale in fp32, the product a unit gives. The
// run-wise dequantize (kernels/cuda/dequantize_units.cu) reads this way.
TS_HOST_DEVICE inline uint32_t load_word(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldcs(reinterpret_cast<const unsigned*>(p));
#else
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
#endif
}

struct Int4Runs {
  Int4Reader r;
  struct Raw {
    uint32_t w;
    uint16_t scale;
    uint8_t zero;
  };
  TS_HOST_DEVICE void fetch(int64_t row, int64_t run, Raw& raw) const {
    raw.w = load_word(r.codes + row * (r.cols / 2) + 4 * run);
    const int64_t g = row * r.groups + ((8 * run) >> r.group_shift);
    raw.scale = r.scales[g];
    raw.zero = r.zeros ? r.zeros[g] : uint8_t(8);
  }
  TS_HOST_DEVICE static void values(const Raw& raw, float (&out)[8]) {
    const float scale = f16_to_float(raw.scale), zero = float(raw.zero);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = (nibble(raw.w, 8 * i + 4) - zero) * scale;
      out[2 * i + 1] = (nibble(raw.w, 8 * i) - zero) * scale;
    }
  }
};

struct Int8Runs {
  Int8Reader r;
  struct Raw {
    uint32_t w[2];
    float scale;
  };
  TS_HOST_DEVICE void fetch(int64_t row, int64_t run, Raw& raw) const {
    load_words(raw.w, r.codes + row * r.cols + 8 * run);
    raw.scale = r.scales[row];
  }
  TS_HOST_DEVICE static void values(const Raw& raw, float (&out)[8]) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint32_t biased = raw.w[j] ^ 0x80808080u;
#pragma unroll
      for (int i = 0; i < 4; ++i) out[4 * j + i] = biased_byte(biased, i) * raw.scale;  // zero 0
    }
  }
};

// Calls fn with the reader of w (a [rows, cols] matrix, readable(cols)): nf4 reads its code and
// dynamic map from `tables`, which must live where w does.
template <typename Fn>
void with_reader(const PackedTensor& w, const quant_math::Nf4Tables* tables, Fn&& fn) {
  const int64_t cols = w.shape[1];
  const auto* p0 = w.parts[0].data_as<uint8_t>();
  switch (w.spec.scheme) {
    case QuantScheme::Int8: return fn(Int8Reader{p0, w.parts[1].data_as<float>(), cols});
    case QuantScheme::Int4:
      return fn(Int4Reader{p0, w.parts[1].data_as<uint16_t>(), w.spec.symmetric ? nullptr : w.parts[2].data_as<uint8_t>(),
                           cols, int(cols / w.spec.group_size), std::countr_zero(uint64_t(w.spec.group_size))});
    case QuantScheme::NF4:
      return fn(Nf4Reader{p0, w.parts[1].data_as<uint8_t>(), w.parts[2].data_as<float>(), w.parts[3].data_as<float>(),
                          tables, cols});
    case QuantScheme::Q8_0: return fn(Q8_0Reader{p0, cols});
    case QuantScheme::Q4_0: return fn(Q4_0Reader{p0, cols});
  }
}

}  // namespace tessera::packed_units
