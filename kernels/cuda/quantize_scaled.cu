// CUDA kernels for QAT with learned scales: the definitions of kernels/quant_math.h ("learned
// scales"), so codes, stored scales and masks equal the CPU reference's bit for bit (the gradient
// sums agree to rounding: a warp adds in another order). One warp per group (an int8 row, an
// int4 group, a q8_0 / q4_0 block), the warps of the grid striding over the groups.
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant_math.h"

namespace tessera::cuda {

namespace qm = quant_math;

namespace {

constexpr int kThreads = 256, kWarpsPerBlock = kThreads / 32;

__device__ __forceinline__ int64_t first_group() { return (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; }
__device__ __forceinline__ int64_t group_stride() { return int64_t(gridDim.x) * blockDim.x / 32; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int mask = 16; mask > 0; mask /= 2) v += shuffle_xor(v, mask);
  return v;
}

struct Scaled {
  float stored, inverse, zero;
};

__device__ __forceinline__ Scaled scaled(QuantScheme scheme, bool symmetric, float s, float z) {
  const float stored = scheme == QuantScheme::Int8 ? s : __half2float(__float2half_rn(s));
  const float inverse = qm::inverse_or_zero(scheme == QuantScheme::Int4 ? stored : s);
  return {stored, inverse, qm::learned_zero(scheme, symmetric, z)};
}

// RTN's scales: the group's min, max and first element of largest magnitude, over the warp.
template <typename T, typename S>
__global__ void group_scales_kernel(S* scale, S* zero, const T* x, int64_t groups, int64_t group, QuantScheme scheme,
                                    bool symmetric) {
  const int lane = threadIdx.x % 32;
  for (int64_t g = first_group(); g < groups; g += group_stride()) {
    const T* v = x + g * group;
    float low = INFINITY, high = -INFINITY, best = 0.0f, m = 0.0f;
    int64_t at = group;  // the index of m
    for (int64_t i = lane; i < group; i += 32) {
      const float e = to_f32(v[i]);
      low = fminf(low, e);
      high = fmaxf(high, e);
      if (fabsf(e) > best) {
        best = fabsf(e);
        m = e;
        at = i;
      }
    }
    for (int mask = 16; mask > 0; mask /= 2) {
      low = fminf(low, shuffle_xor(low, mask));
      high = fmaxf(high, shuffle_xor(high, mask));
      const float other_best = shuffle_xor(best, mask), other_m = shuffle_xor(m, mask);
      const int64_t other_at = __shfl_xor_sync(0xffffffffu, at, mask);
      if (other_best > best || (other_best == best && other_at < at)) {
        best = other_best;
        m = other_m;
        at = other_at;
      }
    }
    if (lane != 0) continue;
    const float amax = fmaxf(fabsf(low), fabsf(high));
    switch (scheme) {
      case QuantScheme::Int8: scale[g] = from_f32<S>(qm::int8_scale(amax)); break;
      case QuantScheme::Q8_0: scale[g] = from_f32<S>(qm::q8_0_scale(amax)); break;
      case QuantScheme::Q4_0: scale[g] = from_f32<S>(qm::q4_0_scale(best == 0.0f ? 0.0f : m)); break;
      case QuantScheme::Int4: {
        const float stored = __half2float(__float2half_rn(qm::int4_scale(low, high, symmetric)));
        scale[g] = from_f32<S>(stored);
        if (zero) zero[g] = from_f32<S>(float(qm::int4_zero(low, qm::inverse_or_zero(stored))));
        break;
      }
      case QuantScheme::NF4: break;
    }
  }
}

// fn(g, v, p) for each group g of this warp: v its values, p its scale and zero as the learned
// definitions use them. The walk quantize_scaled and its backward share.
template <typename T, typename S, typename Fn>
__device__ __forceinline__ void for_each_scaled_group(const T* x, const S* scale, const S* zero, int64_t groups,
                                                      int64_t group, QuantScheme scheme, bool symmetric, Fn&& fn) {
  for (int64_t g = first_group(); g < groups; g += group_stride())
    fn(g, x + g * group, scaled(scheme, symmetric, to_f32(scale[g]), zero ? to_f32(zero[g]) : 0.0f));
}

template <typename T, typename S>
__global__ void quantize_scaled_kernel(uint8_t* codes, void* scales_out, uint8_t* zeros_out, const T* x, const S* scale,
                                       const S* zero, int64_t groups, int64_t group, QuantScheme scheme,
                                       bool symmetric) {
  const int lane = threadIdx.x % 32;
  for_each_scaled_group(x, scale, zero, groups, group, scheme, symmetric, [&](int64_t g, const T* v, const Scaled& p) {
    auto code = [&](int64_t i) { return qm::learned_code(scheme, to_f32(v[i]), p.inverse, p.zero); };
    switch (scheme) {
      case QuantScheme::Int8:
        for (int64_t i = lane; i < group; i += 32) reinterpret_cast<int8_t*>(codes)[g * group + i] = int8_t(code(i));
        if (lane == 0) static_cast<float*>(scales_out)[g] = p.stored;
        break;
      case QuantScheme::Int4:
        for (int64_t i = 2 * lane; i < group; i += 64) codes[(g * group + i) / 2] = uint8_t(code(i) << 4 | code(i + 1));
        if (lane == 0) {
          static_cast<__half*>(scales_out)[g] = __float2half_rn(p.stored);
          if (zeros_out) zeros_out[g] = uint8_t(p.zero);
        }
        break;
      case QuantScheme::Q8_0: {
        uint8_t* record = codes + g * qm::kQ8_0Bytes;
        record[2 + lane] = uint8_t(int8_t(code(lane)));
        if (lane == 0) *reinterpret_cast<__half*>(record) = __float2half_rn(p.stored);
        break;
      }
      case QuantScheme::Q4_0: {
        uint8_t* record = codes + g * qm::kQ4_0Bytes;
        if (lane < 16) record[2 + lane] = uint8_t(code(lane) | code(lane + 16) << 4);
        if (lane == 0) *reinterpret_cast<__half*>(record) = __float2half_rn(p.stored);
        break;
      }
      case QuantScheme::NF4: break;
    }
  });
}

template <typename T, typename S>
__global__ void scaled_backward_kernel(float* g, float* grad_scale, float* grad_zero, const T* x, const S* scale,
                                       const S* zero, int64_t groups, int64_t group, QuantScheme scheme,
                                       bool symmetric) {
  const int lane = threadIdx.x % 32;
  for_each_scaled_group(x, scale, zero, groups, group, scheme, symmetric, [&](int64_t k, const T* v, const Scaled& p) {
    float* gk = g + k * group;
    float sum_s = 0.0f, sum_z = 0.0f;
    for (int64_t i = lane; i < group; i += 32) {
      const qm::LearnedGrad d = qm::learned_grad(scheme, to_f32(v[i]), p.inverse, p.zero, p.stored);
      sum_s += gk[i] * d.dscale;
      sum_z += gk[i] * d.dzero;
      if (!d.inside) gk[i] = 0.0f;
    }
    sum_s = warp_sum(sum_s);
    sum_z = warp_sum(sum_z);
    if (lane == 0) {
      grad_scale[k] += sum_s;
      if (grad_zero) grad_zero[k] += sum_z;
    }
  });
}

unsigned grid_for_groups(int64_t groups) { return grid_for(groups, kWarpsPerBlock); }

// fn(T*, S*) for w's and the scales' dtypes.
template <typename Fn>
void dispatch_two(DType w, DType s, Fn&& fn) {
  dispatch_floating(w, [&](auto* wt) { dispatch_floating(s, [&](auto* st) { fn(wt, st); }); });
}

}  // namespace

void quant_group_scales(const Tensor& scale, const Tensor& zero, const Tensor& w, const QuantSpec& spec) {
  const int64_t groups = w.numel() / spec.group_size;
  dispatch_two(w.dtype(), scale.dtype(), [&](auto* wt, auto* st) {
    using T = std::remove_pointer_t<decltype(wt)>;
    using S = std::remove_pointer_t<decltype(st)>;
    group_scales_kernel<T, S><<<grid_for_groups(groups), kThreads, 0, stream_of(w)>>>(
        scale.data_as<S>(), zero.defined() ? zero.data_as<S>() : nullptr, w.data_as<T>(), groups, spec.group_size,
        spec.scheme, spec.symmetric);
  });
  check_launch();
}

void quantize_scaled(const PackedTensor& out, const Tensor& x, const Tensor& scale, const Tensor& zero) {
  const QuantSpec& spec = out.spec;
  const int64_t groups = out.numel() / spec.group_size;
  const bool records = spec.scheme == QuantScheme::Q8_0 || spec.scheme == QuantScheme::Q4_0;
  dispatch_two(x.dtype(), scale.dtype(), [&](auto* wt, auto* st) {
    using T = std::remove_pointer_t<decltype(wt)>;
    using S = std::remove_pointer_t<decltype(st)>;
    quantize_scaled_kernel<T, S><<<grid_for_groups(groups), kThreads, 0, stream_of(x)>>>(
        out.parts[0].data_as<uint8_t>(), records ? nullptr : out.parts[1].data(),
        spec.scheme == QuantScheme::Int4 && !spec.symmetric ? out.parts[2].data_as<uint8_t>() : nullptr,
        x.data_as<T>(), scale.data_as<S>(), zero.defined() ? zero.data_as<S>() : nullptr, groups, spec.group_size,
        spec.scheme, spec.symmetric);
  });
  check_launch();
}

void quantize_scaled_backward(const Tensor& g, const Tensor& grad_scale, const Tensor& grad_zero, const Tensor& w,
                              const Tensor& scale, const Tensor& zero, const QuantSpec& spec) {
  const int64_t groups = w.numel() / spec.group_size;
  dispatch_two(w.dtype(), scale.dtype(), [&](auto* wt, auto* st) {
    using T = std::remove_pointer_t<decltype(wt)>;
    using S = std::remove_pointer_t<decltype(st)>;
    scaled_backward_kernel<T, S><<<grid_for_groups(groups), kThreads, 0, stream_of(w)>>>(
        g.data_as<float>(), grad_scale.data_as<float>(), grad_zero.defined() ? grad_zero.data_as<float>() : nullptr,
        w.data_as<T>(), scale.data_as<S>(), zero.defined() ? zero.data_as<S>() : nullptr, groups, spec.group_size,
        spec.scheme, spec.symmetric);
  });
  check_launch();
}

}  // namespace tessera::cuda
