// dequantize for matrices whose rows are whole units (kernels/packed_units.h): each thread takes
// kUnits units of 16 weights, kThreads apart over the matrix's units in order (so a warp reads and
// writes contiguous bytes, and no thread idles on a short row), loads all of them before it
// stores any (several loads in flight a thread: the workspace dequantize of gemm_packed's prefill
// path is a memory-speed copy), and writes each (code - zero) * scale rounded once to out's dtype,
// 8 elements (16 bytes for bf16) a store: bit for bit the elementwise definition
// (tests/unit/test_packed_units.cpp), with no per-element index division.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/dequantize_units.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/nf4_tables.h"
#include "kernels/packed_units.h"

namespace tessera::cuda {

namespace pu = packed_units;

namespace {

constexpr int kThreads = 256, kUnits = 4;

template <typename T, typename Reader>
__global__ void __launch_bounds__(kThreads) dequantize_units_kernel(T* out, Reader w, unsigned row_units,
                                                                     unsigned units, int64_t cols) {
  const unsigned first = blockIdx.x * (kThreads * kUnits) + threadIdx.x;
  pu::Unit t[kUnits];
#pragma unroll
  for (int i = 0; i < kUnits; ++i) {
    const unsigned v = first + i * kThreads;
    if (v < units) w.load(v / row_units, int(v % row_units), t[i]);
  }
#pragma unroll
  for (int i = 0; i < kUnits; ++i) {
    const unsigned v = first + i * kThreads;
    if (v >= units) break;
    const int64_t row = v / row_units;
    const int u = int(v % row_units);
    float lo[8], hi[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      lo[e] = (t[i].code[e] - t[i].zero) * t[i].scale;
      hi[e] = (t[i].code[8 + e] - t[i].zero) * t[i].scale;
    }
    store_f32<8>(out + row * cols + Reader::first(u), lo);
    store_f32<8>(out + row * cols + Reader::second(u), hi);
  }
}

}  // namespace

bool dequantize_units(const Tensor& out, const PackedTensor& w) {
  if (w.shape.size() != 2 || !pu::readable(w.shape[1])) return false;
  if (reinterpret_cast<uintptr_t>(out.data()) % (8 * dtype_size(out.dtype())) != 0) return false;
  const int64_t rows = w.shape[0], cols = w.shape[1], units = rows * (cols / pu::kUnit);
  if (units >= (int64_t(1) << 32) - int64_t(kThreads) * kUnits) return false;  // unsigned unit indices
  const quant_math::Nf4Tables* tables = w.spec.scheme == QuantScheme::NF4 ? device_nf4_tables(out.device().index) : nullptr;
  const unsigned blocks = unsigned((units + kThreads * kUnits - 1) / (kThreads * kUnits));
  cudaStream_t stream = stream_of(out);
  pu::with_reader(w, tables, [&](const auto& reader) {
    dispatch_floating(out.dtype(), [&](auto* type) {
      using T = std::remove_pointer_t<decltype(type)>;
      dequantize_units_kernel<T><<<blocks, kThreads, 0, stream>>>(out.data_as<T>(), reader, unsigned(cols / pu::kUnit),
                                                                  unsigned(units), cols);
    });
  });
  check_launch();
  return true;
}

}  // namespace tessera::cuda
