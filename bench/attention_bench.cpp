// Causal attention throughput through the op table:
//   bench/attention_bench B S Hq Hkv D [dtype=bf16] [iters=20]
// q [B, S, Hq, D], k/v [B, S, Hkv, D]. Prints one line: RESULT {"what":"tessera_attention", ...}
// with forward and backward TFLOP/s, counting causal work as half of the dense 4 B Hq S^2 D
// (forward) and 2.5 times that for backward. Runs on cuda:0.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"

using namespace tessera;

namespace {

template <typename Fn>
double seconds_per_call(const Device& gpu, int iters, Fn&& fn) {
  for (int i = 0; i < 3; ++i) fn();
  synchronize_device(gpu);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  synchronize_device(gpu);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TS_CHECK(argc >= 6, "usage: attention_bench B S Hq Hkv D [dtype] [iters]");
    const int64_t b = std::stoll(argv[1]), s = std::stoll(argv[2]), hq = std::stoll(argv[3]),
                  hkv = std::stoll(argv[4]), d = std::stoll(argv[5]);
    const DType dtype = parse_dtype(argc > 6 ? argv[6] : "bf16");
    const int iters = argc > 7 ? std::stoi(argv[7]) : 20;
    TS_CHECK(cuda_device_count() > 0, "attention_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    Tensor q = Tensor::empty({b, s, hq, d}, dtype, gpu), k = Tensor::empty({b, s, hkv, d}, dtype, gpu);
    Tensor v = Tensor::empty({b, s, hkv, d}, dtype, gpu), dout = Tensor::empty(q.shape(), dtype, gpu);
    for (auto [t, seed] : {std::pair{&q, 1}, {&k, 2}, {&v, 3}, {&dout, 4}}) ops::fill_normal(*t, seed, 0, 0, 1);
    Tensor out = Tensor::empty(q.shape(), dtype, gpu), lse = Tensor::empty({b, hq, s}, DType::F32, gpu);
    Tensor dq = Tensor::empty(q.shape(), dtype, gpu), dk = Tensor::empty(k.shape(), dtype, gpu);
    Tensor dv = Tensor::empty(v.shape(), dtype, gpu);
    const float scale = 1.0f / std::sqrt(float(d));

    const double fwd = seconds_per_call(gpu, iters, [&] { ops::attention_forward(out, lse, q, k, v, scale); });
    const double bwd = seconds_per_call(
        gpu, iters, [&] { ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, scale); });
    const double fwd_flops = 4.0 * b * hq * s * s * d / 2;
    std::printf("RESULT {\"what\":\"tessera_attention\",\"b\":%ld,\"s\":%ld,\"hq\":%ld,\"hkv\":%ld,\"d\":%ld,"
                "\"dtype\":\"%s\",\"fwd_ms\":%.4f,\"bwd_ms\":%.4f,\"fwd_tflops\":%.1f,\"bwd_tflops\":%.1f}\n",
                b, s, hq, hkv, d, std::string(dtype_name(dtype)).c_str(), fwd * 1e3, bwd * 1e3,
                fwd_flops / fwd / 1e12, 2.5 * fwd_flops / bwd / 1e12);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 1;
  }
}
