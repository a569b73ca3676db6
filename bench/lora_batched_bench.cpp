// The cost of serving several LoRA adapters in one batch, one projection on cuda:0, bf16:
//   bench/lora_batched_bench ROWS [in=2048] [out=8192] [adapters=4] [rank=16] [iters=200]
// ROWS rows spread round robin over the adapters: the shared base gemm (y = x W^T), then
// ops::lora_batched over every row; next to the one-adapter path a Linear with its own LoRA takes
// (two gemms, x A^T then (.) B^T, for all rows, as if all were one adapter's). Prints one line:
// RESULT {"what":"tessera_lora_batched", ...} with microseconds per call of each and the batched
// LoRA's time as a fraction of the base gemm's.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"

using namespace tessera;

namespace {

template <typename Fn>
double us_per_call(Fn&& fn, int iters, Device gpu) {
  for (int i = 0; i < 10; ++i) fn();
  synchronize_device(gpu);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  synchronize_device(gpu);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters * 1e6;
}

Tensor normal(Shape shape, Device gpu, uint64_t seed) {
  Tensor t = Tensor::empty(std::move(shape), DType::BF16, gpu);
  ops::fill_normal(t, seed, 0, 0.0f, 0.05f);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TS_CHECK(argc >= 2, "usage: lora_batched_bench ROWS [in] [out] [adapters] [rank] [iters]");
    const int64_t rows = std::stoll(argv[1]), in = argc > 2 ? std::stoll(argv[2]) : 2048;
    const int64_t out = argc > 3 ? std::stoll(argv[3]) : 8192, adapters = argc > 4 ? std::stoll(argv[4]) : 4;
    const int64_t rank = argc > 5 ? std::stoll(argv[5]) : 16;
    const int iters = argc > 6 ? std::stoi(argv[6]) : 200;
    TS_CHECK(rows > 0 && in > 0 && out > 0 && adapters > 0 && rank > 0, "lora_batched_bench: sizes must be positive");
    TS_CHECK(cuda_device_count() > 0, "lora_batched_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    const Tensor x = normal({rows, in}, gpu, 1), w = normal({out, in}, gpu, 2);
    const Tensor a = normal({adapters, rank, in}, gpu, 3), b = normal({adapters, out, rank}, gpu, 4);
    const Tensor a1 = normal({rank, in}, gpu, 5), b1 = normal({out, rank}, gpu, 6);
    std::vector<int32_t> index(rows);
    for (int64_t t = 0; t < rows; ++t) index[t] = static_cast<int32_t>(t % adapters);
    const Tensor index_t = Tensor::from_vector(index, {rows}, DType::I32).to(gpu);
    const Tensor ranks = Tensor::from_vector(std::vector<int32_t>(adapters, int32_t(rank)), {adapters}, DType::I32).to(gpu);
    const Tensor scales = Tensor::from_vector(std::vector<float>(adapters, 2.0f), {adapters}, DType::F32).to(gpu);
    Tensor y = Tensor::empty({rows, out}, DType::BF16, gpu), xa = Tensor::empty({rows, rank}, DType::BF16, gpu);

    const double base = us_per_call([&] { ops::gemm(y, x, w, false, true); }, iters, gpu);
    const double batched = us_per_call([&] { ops::lora_batched(y, x, a, b, ranks, scales, index_t); }, iters, gpu);
    const double single = us_per_call([&] {
      ops::gemm(xa, x, a1, false, true);
      ops::gemm(y, xa, b1, false, true, 2.0f, 1.0f);
    }, iters, gpu);
    std::printf("RESULT {\"what\":\"tessera_lora_batched\",\"rows\":%ld,\"in\":%ld,\"out\":%ld,\"adapters\":%ld,"
                "\"rank\":%ld,\"base_gemm_us\":%.2f,\"lora_batched_us\":%.2f,\"one_adapter_gemms_us\":%.2f,"
                "\"batched_over_base\":%.3f}\n",
                rows, in, out, adapters, rank, base, batched, single, batched / base);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lora_batched_bench: %s\n", e.what());
    return 1;
  }
}
