// Causal attention throughput through the op table:
//   bench/attention_bench B S Hq Hkv D [dtype=bf16] [iters=20] [doc_len=0]
// q [B, S, Hq, D], k/v [B, S, Hkv, D]. doc_len > 0 packs documents of doc_len tokens into each
// row (the last one shorter), passed as segment ids. Prints one line per Hopper kernel variant
// (TESSERA_ATTN_FWD / _BWD, kernels/attention_variants.h; row vN times backward vN and the forward
// variant of the same number, or the last one): RESULT {"what":"tessera_attention", ...} with forward and backward
// TFLOP/s, counting each document's causal work as half of the dense 4 Hq L^2 D (forward) and 2.5
// times that for backward. Runs on cuda:0.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/attention_variants.h"
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

// Segment ids i / doc_len for each row; an undefined tensor for doc_len 0.
Tensor document_ids(int64_t b, int64_t s, int64_t doc_len, const Device& gpu) {
  if (doc_len == 0) return Tensor();
  std::vector<int32_t> ids(b * s);
  for (int64_t i = 0; i < b * s; ++i) ids[i] = int32_t(i % s / doc_len);
  return Tensor::from_vector(ids, {b, s}, DType::I32).to(gpu);
}

// Forward FLOPs of causal attention over documents of doc_len tokens (0: one document per row).
double forward_flops(int64_t b, int64_t s, int64_t hq, int64_t d, int64_t doc_len) {
  const int64_t len = doc_len == 0 ? s : doc_len;
  const double squares = double(s / len) * len * len + double(s % len) * (s % len);
  return 4.0 * b * hq * d * squares / 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TS_CHECK(argc >= 6, "usage: attention_bench B S Hq Hkv D [dtype] [iters] [doc_len]");
    const int64_t b = std::stoll(argv[1]), s = std::stoll(argv[2]), hq = std::stoll(argv[3]),
                  hkv = std::stoll(argv[4]), d = std::stoll(argv[5]);
    const DType dtype = parse_dtype(argc > 6 ? argv[6] : "bf16");
    const int iters = argc > 7 ? std::stoi(argv[7]) : 20;
    const int64_t doc_len = argc > 8 ? std::stoll(argv[8]) : 0;
    TS_CHECK(doc_len >= 0, "attention_bench: doc_len must be >= 0, got {}", doc_len);
    TS_CHECK(cuda_device_count() > 0, "attention_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    Tensor q = Tensor::empty({b, s, hq, d}, dtype, gpu), k = Tensor::empty({b, s, hkv, d}, dtype, gpu);
    Tensor v = Tensor::empty({b, s, hkv, d}, dtype, gpu), dout = Tensor::empty(q.shape(), dtype, gpu);
    for (auto [t, seed] : {std::pair{&q, 1}, {&k, 2}, {&v, 3}, {&dout, 4}}) ops::fill_normal(*t, seed, 0, 0, 1);
    Tensor out = Tensor::empty(q.shape(), dtype, gpu), lse = Tensor::empty({b, hq, s}, DType::F32, gpu);
    Tensor dq = Tensor::empty(q.shape(), dtype, gpu), dk = Tensor::empty(k.shape(), dtype, gpu);
    Tensor dv = Tensor::empty(v.shape(), dtype, gpu);
    const Tensor segments = document_ids(b, s, doc_len, gpu);
    const float scale = 1.0f / std::sqrt(float(d));
    const double fwd_flops = forward_flops(b, s, hq, d, doc_len);

    for (int variant = 1; variant <= kAttentionBackwardVariants; ++variant) {
      const std::string fwd_variant = "v" + std::to_string(std::min(variant, kAttentionForwardVariants));
      const std::string bwd_variant = "v" + std::to_string(variant);
      setenv("TESSERA_ATTN_FWD", fwd_variant.c_str(), 1);
      setenv("TESSERA_ATTN_BWD", bwd_variant.c_str(), 1);
      const double fwd =
          seconds_per_call(gpu, iters, [&] { ops::attention_forward(out, lse, q, k, v, scale, segments); });
      const double bwd = seconds_per_call(
          gpu, iters, [&] { ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, scale, segments); });
      std::printf("RESULT {\"what\":\"tessera_attention\",\"variant\":\"%s\",\"fwd_variant\":\"%s\","
                  "\"bwd_variant\":\"%s\",\"b\":%ld,\"s\":%ld,\"hq\":%ld,\"hkv\":%ld,\"d\":%ld,\"doc_len\":%ld,"
                  "\"dtype\":\"%s\",\"fwd_ms\":%.4f,\"bwd_ms\":%.4f,\"fwd_tflops\":%.1f,\"bwd_tflops\":%.1f}\n",
                  bwd_variant.c_str(), fwd_variant.c_str(), bwd_variant.c_str(), b, s, hq, hkv, d, doc_len,
                  std::string(dtype_name(dtype)).c_str(), fwd * 1e3, bwd * 1e3, fwd_flops / fwd / 1e12,
                  2.5 * fwd_flops / bwd / 1e12);
    }
    unsetenv("TESSERA_ATTN_FWD");
    unsetenv("TESSERA_ATTN_BWD");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 1;
  }
}
