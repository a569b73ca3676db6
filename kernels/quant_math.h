// The scalar definitions of the quantization schemes (kernels/quant_format.h), shared by the CPU
// reference and the CUDA kernels so that both give the same bits. A product or sum that a
// definition rounds on its own goes through mul_rn / add_rn, which nvcc does not fuse into an FMA.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.h"
#include "kernels/quant_format.h"  // QuantScheme

namespace tessera::quant_math {

constexpr int kNf4Block = 64;         // elements per absmax
constexpr int kNf4AbsmaxBlock = 256;  // absmax values per fp32 scale (double quantization)

// bitsandbytes' NF4 code (get_4bit_type("nf4")), the fp32 midpoints of its neighbours (the
// thresholds of dQuantizeNF4's decision tree) and the 8-bit dynamic map its double quantization
// uses (create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), as torch computes it
// in fp32; kernels/quant_math.cpp says how).
struct Nf4Tables {
  float nf4[16];
  float thresholds[15];
  float dynamic[256];
};
const Nf4Tables& nf4_tables();  // host memory, built once

TS_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

TS_HOST_DEVICE inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// 1 / scale, and 0 for a zero scale (an all-zero group quantizes to code zero).
TS_HOST_DEVICE inline float inverse_or_zero(float scale) { return scale != 0.0f ? 1.0f / scale : 0.0f; }

TS_HOST_DEVICE inline int clamp_int(float v, int low, int high) {
  return v < float(low) ? low : v > float(high) ? high : int(v);
}

// ---- NF4 ----

// dQuantizeNF4 on x = value * (1 / absmax): the number of thresholds below x. A value on a
// threshold takes the lower code, and NaN (an all-zero block: 0 * inf) gives 0, as the tree does.
TS_HOST_DEVICE inline uint8_t nf4_index(float x, const float* thresholds) {
  uint8_t q = 0;
  for (int i = 0; i < 15; ++i) q += x > thresholds[i] ? 1 : 0;
  return q;
}

// dQuantize<0> of bitsandbytes' blockwise 8-bit quantization: a binary search over the sorted
// 256-entry map from its middle, then the nearer of the last pivot and its bracketing neighbour.
TS_HOST_DEVICE inline uint8_t dynamic_index(float x, const float* code) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f, val = code[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];
  if (x > val) return uint8_t(x > mul_rn(add_rn(upper, val), 0.5f) ? upper_pivot : pivot);
  return uint8_t(x < mul_rn(add_rn(lower, val), 0.5f) ? lower_pivot : pivot);
}

// The offset of the double quantization: the mean of the blocks' absmax, summed in order in
// double and rounded to fp32 (bitsandbytes takes torch's fp32 mean, which may differ in the last
// bit; the offset is stored, so dequantization is exact either way). Host code: both backends
// compute it here.
inline float nf4_absmax_mean(const float* absmax, int64_t blocks) {
  double sum = 0.0;
  for (int64_t b = 0; b < blocks; ++b) sum += absmax[b];
  return float(sum / double(blocks));
}

// A block's absmax from its double-quantized form: map[q] * scale, then + offset, each rounded.
TS_HOST_DEVICE inline float nf4_absmax(uint8_t q, float scale, float offset, const float* dynamic) {
  return add_rn(mul_rn(dynamic[q], scale), offset);
}

// ---- int8: per output channel, symmetric ----

TS_HOST_DEVICE inline float int8_scale(float row_absmax) { return row_absmax / 127.0f; }

TS_HOST_DEVICE inline int8_t int8_code(float x, float inverse_scale) {
  return int8_t(clamp_int(rintf(mul_rn(x, inverse_scale)), -127, 127));
}

// ---- int4: groups along the row, symmetric [-8, 7] (stored + 8) or asymmetric [0, 15] ----

// The scale before rounding to f16 (as torchao chooses it): symmetric amax / 7.5, asymmetric
// (max(max, 0) - min(min, 0)) / 15.
// A group of zeros gets +0: fmaxf/fminf may return either zero of (+0, -0), and the host's and
// the device's differ, so "+ 0.0f" turns a -0 scale into +0 (CPU and CUDA stay bit-identical).
TS_HOST_DEVICE inline float int4_scale(float group_min, float group_max, bool symmetric) {
  if (symmetric) return fmaxf(-group_min, group_max) / 7.5f + 0.0f;
  return (fmaxf(group_max, 0.0f) - fminf(group_min, 0.0f)) / 15.0f + 0.0f;
}

// The zero point of an asymmetric group: the code of 0.0. Symmetric groups use 8.
TS_HOST_DEVICE inline uint8_t int4_zero(float group_min, float inverse_scale) {
  return uint8_t(clamp_int(-rintf(mul_rn(fminf(group_min, 0.0f), inverse_scale)), 0, 15));
}

// The code before the clamp to [0, 15]; QAT's straight-through gradient passes where it is inside.
TS_HOST_DEVICE inline float int4_unclamped(float x, float inverse_scale, uint8_t zero) {
  return rintf(mul_rn(x, inverse_scale)) + float(zero);
}

TS_HOST_DEVICE inline uint8_t int4_code(float x, float inverse_scale, uint8_t zero) {
  return uint8_t(clamp_int(int4_unclamped(x, inverse_scale, zero), 0, 15));
}

TS_HOST_DEVICE inline float int4_value(uint8_t code, uint8_t zero, float scale) {
  return mul_rn(float(int(code) - int(zero)), scale);
}

// ---- q8_0 / q4_0: llama.cpp's blocks of 32 along the row (ggml-quants.c, the _ref functions) ----
// A record is the f16 scale d (little-endian) and then the codes. Codes use the fp32 d through
// its reciprocal; only the stored d is rounded to f16, and dequantization multiplies by that.

constexpr int kGgmlBlock = 32;
constexpr int kQ8_0Bytes = 34, kQ4_0Bytes = 18;

TS_HOST_DEVICE inline float q8_0_scale(float amax) { return amax / 127.0f; }

// roundf: half away from zero, as ggml.
TS_HOST_DEVICE inline int8_t q8_0_code(float x, float inverse_scale) {
  return int8_t(roundf(mul_rn(x, inverse_scale)));
}

// m: the element of largest magnitude with its sign (the first of equals).
TS_HOST_DEVICE inline float q4_0_scale(float m) { return m / -8.0f; }

// trunc(x / d + 8.5), before the min with 15: x / d lies in [-8, 8], so it sees [0.5, 16.5].
TS_HOST_DEVICE inline int q4_0_unclamped(float x, float inverse_scale) {
  return int(add_rn(mul_rn(x, inverse_scale), 8.5f));
}

TS_HOST_DEVICE inline uint8_t q4_0_code(float x, float inverse_scale) {
  const int q = q4_0_unclamped(x, inverse_scale);
  return uint8_t(q < 15 ? q : 15);
}

TS_HOST_DEVICE inline float q4_0_value(uint8_t code, float scale) { return mul_rn(float(int(code) - 8), scale); }

// ---- int8 activations: per row (token), dynamic, asymmetric (torchao's 8da) ----
// scale = (max(max, 0) - min(min, 0)) / 255, zero = clamp(-128 - rint(min(min, 0) / scale)),
// q = clamp(rint(x / scale) + zero, -128, 127), x' = (q - zero) scale.

TS_HOST_DEVICE inline float act8_scale(float row_min, float row_max) {
  return (fmaxf(row_max, 0.0f) - fminf(row_min, 0.0f)) / 255.0f;
}

TS_HOST_DEVICE inline int act8_zero(float row_min, float inverse_scale) {
  return clamp_int(-128.0f - rintf(mul_rn(fminf(row_min, 0.0f), inverse_scale)), -128, 127);
}

TS_HOST_DEVICE inline float act8_value(float x, float scale, float inverse_scale, int zero) {
  const int q = clamp_int(rintf(mul_rn(x, inverse_scale)) + float(zero), -128, 127);
  return mul_rn(float(q - zero), scale);
}


// ---- QAT with learned scales (quant.qat.learnable_scales: torchao's range learning) ----
// Each group of a matrix scheme (int8 rows, int4 groups, q8_0 / q4_0 blocks) has a trainable
// scale s and, for asymmetric int4, a trainable zero point z. The group is quantized as RTN does
// with s in place of the scale it would compute: the stored scale is s itself (int8, f32) or f16(s)
// (int4, q8_0, q4_0); the codes use 1 / s (int8, q8_0, q4_0) or 1 / f16(s) (int4), as RTN uses its
// fp32 or its stored scale; the zero point is clamp(rint(z), 0, 15) (symmetric int4 and q4_0: 8,
// int8 and q8_0: 0). So scales (and zeros) equal to RTN's give RTN's codes, and the packed copy
// written from s and z holds exactly the values the forward used. With learned scales codes can
// leave the grid: they are clamped to [-127, 127] (int8, q8_0) or [0, 15] (int4, q4_0); q4_0's
// code is floor(x / d + 8.5) (ggml's trunc wherever that is >= 0).

TS_HOST_DEVICE inline float learned_zero(QuantScheme scheme, bool symmetric, float z) {
  if (scheme == QuantScheme::Q4_0 || (scheme == QuantScheme::Int4 && symmetric)) return 8.0f;
  if (scheme == QuantScheme::Int4) return float(clamp_int(rintf(z), 0, 15));
  return 0.0f;
}

TS_HOST_DEVICE inline float learned_low(QuantScheme scheme) {
  return scheme == QuantScheme::Int8 || scheme == QuantScheme::Q8_0 ? -127.0f : 0.0f;
}
TS_HOST_DEVICE inline float learned_high(QuantScheme scheme) {
  return scheme == QuantScheme::Int8 || scheme == QuantScheme::Q8_0 ? 127.0f : 15.0f;
}

// The code of x before the clamp.
TS_HOST_DEVICE inline float learned_unclamped(QuantScheme scheme, float x, float inverse, float zero) {
  const float v = mul_rn(x, inverse);
  if (scheme == QuantScheme::Q4_0) return floorf(add_rn(v, 8.5f));
  if (scheme == QuantScheme::Q8_0) return roundf(v);
  return rintf(v) + zero;
}

TS_HOST_DEVICE inline int learned_code(QuantScheme scheme, float x, float inverse, float zero) {
  const float u = learned_unclamped(scheme, x, inverse, zero);
  return clamp_int(u, int(learned_low(scheme)), int(learned_high(scheme)));
}

// The straight-through gradients of one fake-quantized value w' = (clamp(u) - zero) * stored,
// u = round(x / s) + zero: inside the grid dw'/dx = 1, dw'/ds = (u - zero) - x / s, dw'/dz = 0;
// outside it dw'/dx = 0, dw'/ds = clamp(u) - zero, dw'/dz = -stored (round and the f16 rounding
// of s pass gradients straight through, as LSQ and torchao's range learning have it).
struct LearnedGrad {
  bool inside;
  float dscale, dzero;
};

TS_HOST_DEVICE inline LearnedGrad learned_grad(QuantScheme scheme, float x, float inverse, float zero, float stored) {
  const float u = learned_unclamped(scheme, x, inverse, zero);
  const float low = learned_low(scheme), high = learned_high(scheme);
  if (u >= low && u <= high) return {true, (u - zero) - mul_rn(x, inverse), 0.0f};
  return {false, (u < low ? low : high) - zero, -stored};
}

}  // namespace tessera::quant_math
