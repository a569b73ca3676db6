#include "kernels/cpu/f32_view.h"

#include "core/error.h"

namespace tessera::cpu {

void load_f32(float* out, const void* in, DType dtype, int64_t n) {
  switch (dtype) {
    case DType::F32: {
      const float* p = static_cast<const float*>(in);
      std::copy(p, p + n, out);
      return;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(in);
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_bits_to_f32(p[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(in);
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) out[i] = f16_bits_to_f32(p[i]);
      return;
    }
    default:
      fail("expected a floating dtype, got {}", dtype_name(dtype));
  }
}

void store_f32(void* out, const float* in, DType dtype, int64_t n) {
  switch (dtype) {
    case DType::F32: {
      std::copy(in, in + n, static_cast<float*>(out));
      return;
    }
    case DType::BF16: {
      uint16_t* p = static_cast<uint16_t*>(out);
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16_bits(in[i]);
      return;
    }
    case DType::F16: {
      uint16_t* p = static_cast<uint16_t*>(out);
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_f16_bits(in[i]);
      return;
    }
    default:
      fail("expected a floating dtype, got {}", dtype_name(dtype));
  }
}

F32In::F32In(const Tensor& t) {
  if (t.dtype() == DType::F32) {
    ptr_ = t.data_as<float>();
    return;
  }
  buffer_.resize(t.numel());
  load_f32(buffer_.data(), t.data(), t.dtype(), t.numel());
  ptr_ = buffer_.data();
}

F32Out::F32Out(const Tensor& t, bool load_existing) : tensor_(t) {
  if (t.dtype() == DType::F32) {
    ptr_ = t.data_as<float>();
    return;
  }
  buffer_.resize(t.numel());
  if (load_existing) load_f32(buffer_.data(), t.data(), t.dtype(), t.numel());
  ptr_ = buffer_.data();
}

void F32Out::commit() {
  if (tensor_.dtype() != DType::F32) store_f32(tensor_.data(), ptr_, tensor_.dtype(), tensor_.numel());
}

}  // namespace tessera::cpu
