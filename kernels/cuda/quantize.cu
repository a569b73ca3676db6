// CUDA quantize and dequantize: the definitions of kernels/quant_math.h, so every code, scale and
// dequantized value equals the CPU reference's bit for bit. Quantizing is one warp per block or
// group (one thread block per int8 row); dequantizing is a unit of 16 weights per thread for
// matrices of whole units (kernels/cuda/dequantize_units.cu), elementwise otherwise
// (kernels/cuda/elementwise.cuh).
#include <map>
#include <mutex>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/dequantize_units.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/nf4_tables.h"
#include "kernels/quant_math.h"

namespace tessera::cuda {

namespace qm = quant_math;

const qm::Nf4Tables* device_nf4_tables(int device) {
  static std::mutex mu;
  static auto* tables = new std::map<int, Tensor>();  // never freed: kernels may use them until exit
  std::lock_guard lock(mu);
  Tensor& t = (*tables)[device];
  if (!t.defined()) {
    t = Tensor::empty({int64_t(sizeof(qm::Nf4Tables))}, DType::U8, Device::cuda(device));
    const qm::Nf4Tables& host = qm::nf4_tables();
    copy_bytes(t, Tensor::wrap(const_cast<qm::Nf4Tables*>(&host), t.shape(), DType::U8, Device::cpu()));
  }
  return t.data_as<const qm::Nf4Tables>();
}

namespace {

constexpr int kThreads = 256, kWarpsPerBlock = kThreads / 32;

__device__ __forceinline__ float warp_max(float v) {
  for (int mask = 16; mask > 0; mask /= 2) v = fmaxf(v, shuffle_xor(v, mask));
  return v;
}

__device__ __forceinline__ float warp_min(float v) {
  for (int mask = 16; mask > 0; mask /= 2) v = fminf(v, shuffle_xor(v, mask));
  return v;
}

// Warp w of the grid takes items w, w + warps, ...: whole warps, so shuffles see every lane.
__device__ __forceinline__ int64_t first_warp_item() { return (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; }
__device__ __forceinline__ int64_t warp_item_stride() { return int64_t(gridDim.x) * blockDim.x / 32; }

unsigned grid_for_warps(int64_t items) { return grid_for(items, kWarpsPerBlock); }

// NF4, first level: one warp per block of 64, lane l quantizing elements 2l and 2l + 1 into one
// byte. absmax receives each block's absmax in fp32 for the second level.
template <typename T>
__global__ void nf4_blocks_kernel(uint8_t* codes, float* absmax, const T* x, int64_t n, int64_t blocks,
                                  const qm::Nf4Tables* tables) {
  __shared__ float thresholds[15];
  if (threadIdx.x < 15) thresholds[threadIdx.x] = tables->thresholds[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x % 32;
  for (int64_t b = first_warp_item(); b < blocks; b += warp_item_stride()) {
    const int64_t i = b * qm::kNf4Block + 2 * lane;
    const float v0 = i < n ? to_f32(x[i]) : 0.0f, v1 = i + 1 < n ? to_f32(x[i + 1]) : 0.0f;
    const float m = warp_max(fmaxf(fabsf(v0), fabsf(v1)));
    const float inverse = 1.0f / m;
    if (lane == 0) absmax[b] = m;
    if (i < n)
      codes[i / 2] = uint8_t(qm::nf4_index(qm::mul_rn(v0, inverse), thresholds) << 4 |
                             qm::nf4_index(qm::mul_rn(v1, inverse), thresholds));
  }
}

// NF4, double quantization: one thread block of 256 per scale, one thread per absmax.
__global__ void nf4_absmax_kernel(uint8_t* qabsmax, float* scale, const float* absmax, int64_t blocks, float offset,
                                  const qm::Nf4Tables* tables) {
  __shared__ float map[256];
  map[threadIdx.x] = tables->dynamic[threadIdx.x];
  const int64_t b = int64_t(blockIdx.x) * qm::kNf4AbsmaxBlock + threadIdx.x;
  const float centred = b < blocks ? absmax[b] - offset : 0.0f;
  const float m = block_reduce(fabsf(centred), 0.0f, [](float a, float c) { return fmaxf(a, c); });
  if (b < blocks) qabsmax[b] = qm::dynamic_index(qm::mul_rn(centred, 1.0f / m), map);
  if (threadIdx.x == 0) scale[blockIdx.x] = m;
}

void quantize_nf4(const PackedTensor& out, const Tensor& x) {
  const int64_t n = out.numel(), blocks = out.parts[1].numel();
  const qm::Nf4Tables* tables = device_nf4_tables(x.device().index);
  cudaStream_t stream = stream_of(x);
  Tensor absmax = Tensor::empty({blocks}, DType::F32, x.device());
  dispatch_floating(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    nf4_blocks_kernel<T><<<grid_for_warps(blocks), kThreads, 0, stream>>>(
        out.parts[0].data_as<uint8_t>(), absmax.data_as<float>(), x.data_as<T>(), n, blocks, tables);
  });
  check_launch();
  // The mean of the absmax goes through the host, summed in order as the CPU reference does.
  const std::vector<float> host = absmax.to_vector<float>();
  const float offset = qm::nf4_absmax_mean(host.data(), blocks);
  fill(out.parts[3], offset);
  nf4_absmax_kernel<<<unsigned(out.parts[2].numel()), qm::kNf4AbsmaxBlock, 0, stream>>>(
      out.parts[1].data_as<uint8_t>(), out.parts[2].data_as<float>(), absmax.data_as<float>(), blocks, offset, tables);
  check_launch();
}

// int8: one thread block per row.
template <typename T>
__global__ void int8_rows_kernel(int8_t* codes, float* scales, const T* x, int64_t cols) {
  const T* row = x + int64_t(blockIdx.x) * cols;
  float m = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, fabsf(to_f32(row[c])));
  m = block_reduce(m, 0.0f, [](float a, float b) { return fmaxf(a, b); });
  const float scale = qm::int8_scale(m), inverse = qm::inverse_or_zero(scale);
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    codes[int64_t(blockIdx.x) * cols + c] = qm::int8_code(to_f32(row[c]), inverse);
}

// One int4 group's parameters, found by a whole warp (groups tile each row and rows are
// contiguous, so group g starts at element g * size); every lane gets them.
struct Int4Group {
  __half scale;
  float inverse;
  uint8_t zero;
};

template <typename T>
__device__ Int4Group int4_group(const T* v, int group, bool symmetric, int lane) {
  float low = INFINITY, high = -INFINITY;
  for (int i = lane; i < group; i += 32) {
    low = fminf(low, to_f32(v[i]));
    high = fmaxf(high, to_f32(v[i]));
  }
  low = warp_min(low);
  high = warp_max(high);
  const __half scale = __float2half_rn(qm::int4_scale(low, high, symmetric));
  const float inverse = qm::inverse_or_zero(__half2float(scale));
  return {scale, inverse, symmetric ? uint8_t(8) : qm::int4_zero(low, inverse)};
}

// int4: one warp per group.
template <typename T>
__global__ void int4_groups_kernel(uint8_t* codes, __half* scales, uint8_t* zeros, const T* x, int64_t groups,
                                   int group, bool symmetric) {
  const int lane = threadIdx.x % 32;
  for (int64_t g = first_warp_item(); g < groups; g += warp_item_stride()) {
    const T* v = x + g * group;
    const Int4Group p = int4_group(v, group, symmetric, lane);
    if (lane == 0) {
      scales[g] = p.scale;
      if (zeros) zeros[g] = p.zero;
    }
    for (int i = 2 * lane; i < group; i += 64)
      codes[(g * group + i) / 2] = uint8_t(qm::int4_code(to_f32(v[i]), p.inverse, p.zero) << 4 |
                                           qm::int4_code(to_f32(v[i + 1]), p.inverse, p.zero));
  }
}

template <typename T>
__global__ void int4_mask_kernel(float* grad, const T* x, int64_t groups, int group, bool symmetric) {
  const int lane = threadIdx.x % 32;
  for (int64_t g = first_warp_item(); g < groups; g += warp_item_stride()) {
    const T* v = x + g * group;
    const Int4Group p = int4_group(v, group, symmetric, lane);
    for (int i = lane; i < group; i += 32) {
      const float u = qm::int4_unclamped(to_f32(v[i]), p.inverse, p.zero);
      if (u < 0.0f || u > 15.0f) grad[g * group + i] = 0.0f;
    }
  }
}

// q8_0's and q4_0's scales from a warp holding one block, lane j element v = x[j]: the absmax
// and the first element of largest magnitude (an all-zero block keeps +0, as the CPU loop does).
struct BlockExtremes {
  float amax, signed_max;
};

__device__ BlockExtremes block_extremes(float v) {
  float m = fabsf(v);
  int first = threadIdx.x % 32;
  for (int mask = 16; mask > 0; mask /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, m, mask);
    const int other_lane = __shfl_xor_sync(0xffffffffu, first, mask);
    if (other > m || (other == m && other_lane < first)) {
      m = other;
      first = other_lane;
    }
  }
  const float signed_max = __shfl_sync(0xffffffffu, v, first);
  return {m, m == 0.0f ? 0.0f : signed_max};
}

// q8_0 / q4_0: one warp per block of 32, lane j holding element j.
template <typename T, bool kQ4>
__global__ void ggml_blocks_kernel(uint8_t* records, const T* x, int64_t blocks) {
  const int lane = threadIdx.x % 32;
  for (int64_t b = first_warp_item(); b < blocks; b += warp_item_stride()) {
    const float v = to_f32(x[b * qm::kGgmlBlock + lane]);
    const BlockExtremes e = block_extremes(v);
    if constexpr (kQ4) {
      const float d = qm::q4_0_scale(e.signed_max), inverse = qm::inverse_or_zero(d);
      uint8_t* record = records + b * qm::kQ4_0Bytes;
      const uint8_t code = qm::q4_0_code(v, inverse), high = __shfl_down_sync(0xffffffffu, code, 16);
      if (lane < 16) record[2 + lane] = uint8_t(code | high << 4);
      if (lane == 0) *reinterpret_cast<__half*>(record) = __float2half_rn(d);
    } else {
      const float d = qm::q8_0_scale(e.amax), inverse = qm::inverse_or_zero(d);
      uint8_t* record = records + b * qm::kQ8_0Bytes;
      record[2 + lane] = uint8_t(qm::q8_0_code(v, inverse));
      if (lane == 0) *reinterpret_cast<__half*>(record) = __float2half_rn(d);
    }
  }
}

template <typename T>
__global__ void q4_0_mask_kernel(float* grad, const T* x, int64_t blocks) {
  const int lane = threadIdx.x % 32;
  for (int64_t b = first_warp_item(); b < blocks; b += warp_item_stride()) {
    const int64_t i = b * qm::kGgmlBlock + lane;
    const float v = to_f32(x[i]);
    const float inverse = qm::inverse_or_zero(qm::q4_0_scale(block_extremes(v).signed_max));
    if (qm::q4_0_unclamped(v, inverse) > 15) grad[i] = 0.0f;
  }
}

// int8 activations: one thread block per row.
template <typename T>
__global__ void act8_rows_kernel(T* out, const T* x, int64_t cols) {
  const T* row = x + int64_t(blockIdx.x) * cols;
  float low = INFINITY, high = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    low = fminf(low, to_f32(row[c]));
    high = fmaxf(high, to_f32(row[c]));
  }
  low = block_reduce(low, INFINITY, [](float a, float b) { return fminf(a, b); });
  high = block_reduce(high, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
  const float scale = qm::act8_scale(low, high), inverse = qm::inverse_or_zero(scale);
  const int zero = qm::act8_zero(low, inverse);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    out[int64_t(blockIdx.x) * cols + c] = from_f32<T>(qm::act8_value(to_f32(row[c]), scale, inverse, zero));
}

template <typename T>
struct Nf4DequantOp {
  T* out;
  const uint8_t *codes, *qabsmax;
  const float *scale, *offset;
  const qm::Nf4Tables* tables;

  // A pack starts at a multiple of its width (4), so its elements share one block of 64.
  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    const int64_t b = i / qm::kNf4Block;
    const float absmax = qm::nf4_absmax(qabsmax[b], scale[b / qm::kNf4AbsmaxBlock], *offset, tables->dynamic);
    float v[kN];
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const uint8_t byte = codes[(i + e) / 2];
      v[e] = qm::mul_rn(tables->nf4[(i + e) % 2 == 0 ? byte >> 4 : byte & 15], absmax);
    }
    store_f32<kN>(out + i, v);
  }
};

template <typename T>
struct Int8DequantOp {
  T* out;
  const int8_t* codes;
  const float* scales;
  int64_t cols;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float v[kN];
#pragma unroll
    for (int e = 0; e < kN; ++e) v[e] = qm::mul_rn(float(codes[i + e]), scales[(i + e) / cols]);
    store_f32<kN>(out + i, v);
  }
};

template <typename T>
struct Int4DequantOp {
  T* out;
  const uint8_t* codes;
  const __half* scales;
  const uint8_t* zeros;  // null: symmetric
  int64_t group;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float v[kN];
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const int64_t g = (i + e) / group;
      const uint8_t byte = codes[(i + e) / 2];
      v[e] = qm::int4_value((i + e) % 2 == 0 ? byte >> 4 : byte & 15, zeros ? zeros[g] : 8, __half2float(scales[g]));
    }
    store_f32<kN>(out + i, v);
  }
};

// q8_0 / q4_0: element i is in block i / 32 (rows are whole blocks, back to back).
template <typename T, bool kQ4>
struct GgmlDequantOp {
  T* out;
  const uint8_t* records;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float v[kN];
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const int64_t b = (i + e) / qm::kGgmlBlock;
      const int j = int((i + e) % qm::kGgmlBlock);
      const uint8_t* record = records + b * (kQ4 ? qm::kQ4_0Bytes : qm::kQ8_0Bytes);
      const float d = __half2float(*reinterpret_cast<const __half*>(record));
      if constexpr (kQ4) {
        const uint8_t byte = record[2 + j % 16];
        v[e] = qm::q4_0_value(j < 16 ? byte & 15 : byte >> 4, d);
      } else {
        v[e] = qm::mul_rn(float(int8_t(record[2 + j])), d);
      }
    }
    store_f32<kN>(out + i, v);
  }
};

}  // namespace

void quantize(const PackedTensor& out, const Tensor& x) {
  const QuantScheme scheme = out.spec.scheme;
  if (scheme == QuantScheme::NF4) return quantize_nf4(out, x);
  cudaStream_t stream = stream_of(x);
  dispatch_floating(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    switch (scheme) {
      case QuantScheme::Int8:
        int8_rows_kernel<T><<<unsigned(out.shape[0]), kThreads, 0, stream>>>(
            out.parts[0].data_as<int8_t>(), out.parts[1].data_as<float>(), x.data_as<T>(), out.shape[1]);
        break;
      case QuantScheme::Int4: {
        const int64_t groups = out.parts[1].numel();
        int4_groups_kernel<T><<<grid_for_warps(groups), kThreads, 0, stream>>>(
            out.parts[0].data_as<uint8_t>(), out.parts[1].data_as<__half>(),
            out.spec.symmetric ? nullptr : out.parts[2].data_as<uint8_t>(), x.data_as<T>(), groups,
            int(out.spec.group_size), out.spec.symmetric);
        break;
      }
      case QuantScheme::Q8_0:
      case QuantScheme::Q4_0: {
        const int64_t blocks = out.numel() / qm::kGgmlBlock;
        auto kernel = scheme == QuantScheme::Q4_0 ? ggml_blocks_kernel<T, true> : ggml_blocks_kernel<T, false>;
        kernel<<<grid_for_warps(blocks), kThreads, 0, stream>>>(out.parts[0].data_as<uint8_t>(), x.data_as<T>(), blocks);
        break;
      }
      case QuantScheme::NF4: break;  // quantize_nf4, above
    }
  });
  check_launch();
}

void dequantize(const Tensor& out, const PackedTensor& w) {
  if (dequantize_units(out, w)) return;  // matrices of whole units: no per-element index arithmetic
  const int64_t n = w.numel();
  cudaStream_t stream = stream_of(out);
  dispatch_floating(out.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    T* o = out.data_as<T>();
    switch (w.spec.scheme) {
      case QuantScheme::NF4: {
        const Nf4DequantOp<T> op{o, w.parts[0].data_as<uint8_t>(), w.parts[1].data_as<uint8_t>(),
                                 w.parts[2].data_as<float>(), w.parts[3].data_as<float>(),
                                 device_nf4_tables(out.device().index)};
        return launch_elementwise(n, packs_aligned(o), stream, op);
      }
      case QuantScheme::Int8:
        return launch_elementwise(n, packs_aligned(o), stream,
                                  Int8DequantOp<T>{o, w.parts[0].data_as<int8_t>(), w.parts[1].data_as<float>(),
                                                   w.shape[1]});
      case QuantScheme::Int4:
        return launch_elementwise(
            n, packs_aligned(o), stream,
            Int4DequantOp<T>{o, w.parts[0].data_as<uint8_t>(), w.parts[1].data_as<__half>(),
                             w.spec.symmetric ? nullptr : w.parts[2].data_as<uint8_t>(), w.spec.group_size});
      case QuantScheme::Q8_0:
        return launch_elementwise(n, packs_aligned(o), stream, GgmlDequantOp<T, false>{o, w.parts[0].data_as<uint8_t>()});
      case QuantScheme::Q4_0:
        return launch_elementwise(n, packs_aligned(o), stream, GgmlDequantOp<T, true>{o, w.parts[0].data_as<uint8_t>()});
    }
  });
}

void quantize_mask(const Tensor& grad, const Tensor& w, const QuantSpec& spec) {
  cudaStream_t stream = stream_of(w);
  dispatch_floating(w.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    if (spec.scheme == QuantScheme::Int4) {
      const int64_t groups = w.numel() / spec.group_size;
      int4_mask_kernel<T><<<grid_for_warps(groups), kThreads, 0, stream>>>(grad.data_as<float>(), w.data_as<T>(), groups,
                                                                             int(spec.group_size), spec.symmetric);
    } else if (spec.scheme == QuantScheme::Q4_0) {
      const int64_t blocks = w.numel() / qm::kGgmlBlock;
      q4_0_mask_kernel<T><<<grid_for_warps(blocks), kThreads, 0, stream>>>(grad.data_as<float>(), w.data_as<T>(), blocks);
    }
  });
  check_launch();
}

void fake_quantize_rows_int8(const Tensor& out, const Tensor& x) {
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  dispatch_floating(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    act8_rows_kernel<T><<<unsigned(rows), kThreads, 0, stream_of(x)>>>(out.data_as<T>(), x.data_as<T>(), cols);
  });
  check_launch();
}

}  // namespace tessera::cuda
