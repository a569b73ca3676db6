// llama.cpp's Q8_0 and Q4_0 block formats and the CPU quantize/dequantize of ggml's reference
// (ggml-quants.c, quantize_row_q8_0_ref / quantize_row_q4_0_ref), bit for bit. GGUF export,
// fake quantization (QAT) and the quantized kernels all test against these functions, so a
// weight means the same thing in our files, our training and llama.cpp.
//
// A row of n values (n a multiple of 32, along the input dimension of a [out, in] weight) is
// n / 32 blocks, each an fp16 scale d followed by its codes:
//   Q8_0 (34 bytes): d = amax / 127, q = round(x / d) (half away from zero), x = q d.
//   Q4_0 (18 bytes): d = m / -8 with m the element of largest magnitude, sign kept (the first one
//        on ties), q = min(15, trunc(x / d + 8.5)), x = (q - 8) d. Byte j holds element j in its
//        low nibble and element j + 16 in its high nibble.
// As in ggml, codes use the fp32 scale through its reciprocal (x * (1 / d), 0 when d is 0) and
// only the stored scale is rounded to fp16, which is also what dequantization multiplies by.
// A port (CUDA, fake quantization) must round x * id and the + 8.5 separately (no fused
// multiply-add: nvcc contracts by default, so use __fmul_rn / __fadd_rn) to agree bit for bit.
#pragma once

#include <cstdint>

namespace tessera::ggml {

inline constexpr int64_t kBlockSize = 32;  // QK8_0 = QK4_0

struct BlockQ8_0 {
  uint16_t d;  // fp16 bits
  int8_t qs[kBlockSize];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 blocks are 34 bytes in GGUF files");

struct BlockQ4_0 {
  uint16_t d;  // fp16 bits
  uint8_t qs[kBlockSize / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 blocks are 18 bytes in GGUF files");

// n must be a multiple of kBlockSize (checked: tessera::Error otherwise); y holds n / 32 blocks.
// Blocks are independent, so long rows are split over threads with identical results.
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t n);
void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t n);

}  // namespace tessera::ggml
