// dequantize for matrices whose rows are whole units (kernels/packed_units.h): one thread per unit
// of 16 weights, each (code - zero) * scale rounded once to out's dtype, which is bit for bit the
// elementwise definition (tests/unit/test_packed_units.cpp), with no per-element index division:
// the workspace dequantize of gemm_packed's prefill path runs at memory speed.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/dequantize_units.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/nf4_tables.h"
#include "kernels/packed_units.h"

namespace tessera::cuda {

namespace pu = packed_units;

namespace {

constexpr int kThreads = 256;

template <typename T, typename Reader>
__global__ void dequantize_units_kernel(T* out, Reader w, int64_t rows, int64_t cols) {
  const int units = int(cols / pu::kUnit);
  const int u = blockIdx.x * kThreads + threadIdx.x;
  if (u >= units) return;
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    pu::Unit t;
    w.load(row, u, t);
    float lo[8], hi[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      lo[e] = (t.code[e] - t.zero) * t.scale;
      hi[e] = (t.code[8 + e] - t.zero) * t.scale;
    }
    store_f32<8>(out + row * cols + Reader::first(u), lo);
    store_f32<8>(out + row * cols + Reader::second(u), hi);
  }
}

}  // namespace

bool dequantize_units(const Tensor& out, const PackedTensor& w) {
  if (w.shape.size() != 2 || !pu::readable(w.shape[1])) return false;
  if (reinterpret_cast<uintptr_t>(out.data()) % (8 * dtype_size(out.dtype())) != 0) return false;
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const quant_math::Nf4Tables* tables = w.spec.scheme == QuantScheme::NF4 ? device_nf4_tables(out.device().index) : nullptr;
  const dim3 grid(unsigned((cols / pu::kUnit + kThreads - 1) / kThreads), unsigned(std::min<int64_t>(rows, 65535)));
  cudaStream_t stream = stream_of(out);
  pu::with_reader(w, tables, [&](const auto& reader) {
    dispatch_floating(out.dtype(), [&](auto* type) {
      using T = std::remove_pointer_t<decltype(type)>;
      dequantize_units_kernel<T><<<grid, kThreads, 0, stream>>>(out.data_as<T>(), reader, rows, cols);
    });
  });
  check_launch();
  return true;
}

}  // namespace tessera::cuda
