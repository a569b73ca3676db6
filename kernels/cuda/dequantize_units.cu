// dequantize for matrices whose rows are whole units (kernels/packed_units.h): each thread takes
// kUnits units of 16 weights, kThreads apart over the matrix's units in order (so a warp reads and
// writes contiguous bytes, and no thread idles on a short row), loads all of them before it
// stores any (several loads in flight a thread: the workspace dequantize of gemm_packed's prefill
// path is a memory-speed copy), and writes each (code - zero) * scale rounded once to out's dtype,
// 8 elements (16 bytes for bf16) a store: bit for bit the elementwise definition
// (tests/unit/test_packed_units.cpp), with no per-element index division. int4 and int8 go run by
// run by default (TESSERA_DEQUANTIZE=runs, below: fewer registers, more loads in flight), the same
// values.
#include <cstdlib>
#include <string>

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

// The run-wise kernel (int4 and int8, TESSERA_DEQUANTIZE=runs): each thread fetches kRuns runs
// of 8 weights (a warp's fetch is 128 or 256 contiguous bytes of codes) before it converts any, and
// stores each as one 16-byte pack (bf16: a warp writes 512 contiguous bytes); few registers a
// thread, so many threads, and so many loads, in flight.
constexpr int kRuns = 8;

template <typename T, typename Runs>
__global__ void __launch_bounds__(kThreads) dequantize_runs_kernel(T* out, Runs w, unsigned row_runs, unsigned runs) {
  const unsigned first = blockIdx.x * (kThreads * kRuns) + threadIdx.x;
  typename Runs::Raw raw[kRuns];
#pragma unroll
  for (int i = 0; i < kRuns; ++i) {
    const unsigned v = first + i * kThreads;
    if (v < runs) w.fetch(v / row_runs, v % row_runs, raw[i]);
  }
#pragma unroll
  for (int i = 0; i < kRuns; ++i) {
    const unsigned v = first + i * kThreads;
    if (v >= runs) break;
    float values[8];
    Runs::values(raw[i], values);
    store_f32<8>(out + int64_t(v) * 8, values);  // rows are contiguous: run v starts at element 8v
  }
}

// TESSERA_DEQUANTIZE=runs (the default: 8B prefill of 2048 tokens with int4 weights 18,579 tok/s
// against units' 18,232, bf16 19,417, session 8 call B; int4 and int8 with aligned codes, other
// schemes read units) or units, read at each call.
bool runs_wanted(const PackedTensor& w) {
  const char* v = std::getenv("TESSERA_DEQUANTIZE");
  const std::string choice = v && *v ? v : "runs";
  if (choice != "units" && choice != "runs")
    throw Error("TESSERA_DEQUANTIZE: unknown '" + choice + "' (expected units or runs)");
  const size_t align = w.spec.scheme == QuantScheme::Int8 ? 8 : 4;
  return choice == "runs" && (w.spec.scheme == QuantScheme::Int4 || w.spec.scheme == QuantScheme::Int8) &&
         reinterpret_cast<uintptr_t>(w.parts[0].data()) % align == 0;
}

}  // namespace

bool dequantize_units(const Tensor& out, const PackedTensor& w) {
  if (w.shape.size() != 2 || !pu::readable(w.shape[1])) return false;
  if (reinterpret_cast<uintptr_t>(out.data()) % (8 * dtype_size(out.dtype())) != 0) return false;
  const int64_t rows = w.shape[0], cols = w.shape[1], units = rows * (cols / pu::kUnit);
  if (units >= (int64_t(1) << 32) - int64_t(kThreads) * kUnits) return false;  // unsigned unit indices
  cudaStream_t stream = stream_of(out);
  if (runs_wanted(w) && 2 * units < (int64_t(1) << 32) - int64_t(kThreads) * kRuns) {  // unsigned run indices
    const int64_t runs = 2 * units;
    const unsigned blocks = unsigned((runs + kThreads * kRuns - 1) / (kThreads * kRuns));
    pu::with_reader(w, nullptr, [&](const auto& reader) {
      using Reader = std::decay_t<decltype(reader)>;
      dispatch_floating(out.dtype(), [&](auto* type) {
        using T = std::remove_pointer_t<decltype(type)>;
        auto go = [&](const auto& runs_reader) {
          dequantize_runs_kernel<T><<<blocks, kThreads, 0, stream>>>(out.data_as<T>(), runs_reader, unsigned(cols / 8),
                                                                     unsigned(runs));
        };
        if constexpr (std::is_same_v<Reader, pu::Int4Reader>) go(pu::Int4Runs{reader});
        if constexpr (std::is_same_v<Reader, pu::Int8Reader>) go(pu::Int8Runs{reader});
      });
    });
    check_launch();
    return true;
  }
  const quant_math::Nf4Tables* tables = w.spec.scheme == QuantScheme::NF4 ? device_nf4_tables(out.device().index) : nullptr;
  const unsigned blocks = unsigned((units + kThreads * kUnits - 1) / (kThreads * kUnits));
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
