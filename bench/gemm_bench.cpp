// gemm throughput through the op table: bench/gemm_bench M N K [dtype=bf16] [trans_b=0] [iters=50]
// Prints one line: RESULT {"what":"tessera_gemm", ..., "tflops": X}. Runs on cuda:0.
#include <chrono>
#include <cstdio>
#include <string>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"

using namespace tessera;

int main(int argc, char** argv) {
  try {
    TS_CHECK(argc >= 4, "usage: gemm_bench M N K [dtype] [trans_b] [iters]");
    const int64_t m = std::stoll(argv[1]), n = std::stoll(argv[2]), k = std::stoll(argv[3]);
    const DType dtype = parse_dtype(argc > 4 ? argv[4] : "bf16");
    const bool trans_b = argc > 5 && std::string(argv[5]) == "1";
    const int iters = argc > 6 ? std::stoi(argv[6]) : 50;
    TS_CHECK(cuda_device_count() > 0, "gemm_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    Tensor a = Tensor::empty({m, k}, dtype, gpu), b = Tensor::empty(trans_b ? Shape{n, k} : Shape{k, n}, dtype, gpu);
    Tensor c = Tensor::empty({m, n}, dtype, gpu);
    ops::fill_normal(a, 1, 0, 0, 1);  // random data: zeros would flatter the power-limited clocks
    ops::fill_normal(b, 2, 0, 0, 1);
    for (int i = 0; i < 5; ++i) ops::gemm(c, a, b, false, trans_b);
    synchronize_device(gpu);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) ops::gemm(c, a, b, false, trans_b);
    synchronize_device(gpu);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
    const double tflops = 2.0 * m * n * k / seconds / 1e12;
    std::printf("RESULT {\"what\":\"tessera_gemm\",\"m\":%ld,\"n\":%ld,\"k\":%ld,\"dtype\":\"%s\",\"trans_b\":%d,"
                "\"ms\":%.4f,\"tflops\":%.1f}\n",
                m, n, k, std::string(dtype_name(dtype)).c_str(), trans_b ? 1 : 0, seconds * 1e3, tflops);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemm_bench: %s\n", e.what());
    return 1;
  }
}
