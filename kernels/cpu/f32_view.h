// The CPU reference computes in fp32: these give an fp32 view of any floating tensor, converting
// bf16/f16 on the way in and out, and touching f32 tensors in place with no copy.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace tessera::cpu {

// Converts n elements between a floating dtype and f32.
void load_f32(float* out, const void* in, DType dtype, int64_t n);
void store_f32(void* out, const float* in, DType dtype, int64_t n);

// v rounded to the nearest value of a floating dtype, back in f32: the references round where
// a bf16/f16 model would, so that they agree with the CUDA kernels and with HF.
inline float round_to(DType dtype, float v) {
  switch (dtype) {
    case DType::BF16: return bf16_bits_to_f32(f32_to_bf16_bits(v));
    case DType::F16: return f16_bits_to_f32(f32_to_f16_bits(v));
    default: return v;
  }
}

class F32In {
 public:
  explicit F32In(const Tensor& t);
  const float* data() const { return ptr_; }

 private:
  std::vector<float> buffer_;
  const float* ptr_;
};

// Results land in data(); commit() writes them to the tensor (a no-op for f32).
class F32Out {
 public:
  F32Out(const Tensor& t, bool load_existing);
  float* data() { return ptr_; }
  void commit();

 private:
  Tensor tensor_;
  std::vector<float> buffer_;
  float* ptr_;
};

}  // namespace tessera::cpu
