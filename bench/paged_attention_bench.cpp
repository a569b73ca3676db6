// Decode attention over the paged KV cache through the op table:
//   bench/paged_attention_bench BATCH CONTEXT [Hq=32] [Hkv=8] [D=128] [iters=50]
// One query token per sequence (a decode step) at position CONTEXT - 1, bf16, blocks of 16 slots
// handed out in shuffled order. Calls cycle over enough layers' caches (>= 512 MiB in all) that
// the KV never sits in L2 from one call to the next, as in a model. Prints one line:
// RESULT {"what":"tessera_paged_attention", ...} with the time per call and the GB/s of KV read
// (BATCH x CONTEXT x Hkv x D x 2 bytes, keys and values). Runs on cuda:0.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"

using namespace tessera;

int main(int argc, char** argv) {
  try {
    TS_CHECK(argc >= 3, "usage: paged_attention_bench BATCH CONTEXT [Hq] [Hkv] [D] [iters]");
    const int64_t batch = std::stoll(argv[1]), context = std::stoll(argv[2]);
    const int64_t hq = argc > 3 ? std::stoll(argv[3]) : 32, hkv = argc > 4 ? std::stoll(argv[4]) : 8;
    const int64_t d = argc > 5 ? std::stoll(argv[5]) : 128;
    const int iters = argc > 6 ? std::stoi(argv[6]) : 50;
    TS_CHECK(batch > 0 && context > 0, "paged_attention_bench: BATCH and CONTEXT must be positive");
    TS_CHECK(cuda_device_count() > 0, "paged_attention_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    constexpr int64_t block_size = 16;

    const int64_t blocks_per_seq = (context + block_size - 1) / block_size, blocks = batch * blocks_per_seq;
    std::vector<int32_t> pool(blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937_64(7));
    std::vector<int32_t> seqs(batch), positions(batch, int32_t(context - 1));
    std::iota(seqs.begin(), seqs.end(), 0);
    const Tensor tables = Tensor::from_vector(pool, {batch, blocks_per_seq}, DType::I32).to(gpu);
    const Tensor query_seq = Tensor::from_vector(seqs, {batch}, DType::I32).to(gpu);
    const Tensor query_pos = Tensor::from_vector(positions, {batch}, DType::I32).to(gpu);

    const double kv_bytes = 2.0 * batch * context * hkv * d * 2;  // what one call must read
    const double cache_bytes = 2.0 * blocks * block_size * hkv * d * 2;
    const int64_t layers = std::clamp<int64_t>(int64_t(std::ceil(512.0 * (1 << 20) / cache_bytes)), 1, 256);
    std::vector<Tensor> k_caches, v_caches;
    for (int64_t l = 0; l < layers; ++l) {
      for (auto* caches : {&k_caches, &v_caches}) {
        caches->push_back(Tensor::empty({blocks, block_size, hkv, d}, DType::BF16, gpu));
        ops::fill_normal(caches->back(), 11 + caches->size() + 2 * l, 0, 0, 1);
      }
    }
    Tensor q = Tensor::empty({batch, hq, d}, DType::BF16, gpu), out = Tensor::empty(q.shape(), DType::BF16, gpu);
    ops::fill_normal(q, 3, 0, 0, 1);
    const float scale = 1.0f / std::sqrt(float(d));

    int64_t layer = 0;
    auto call = [&] {
      ops::paged_attention(q, k_caches[layer], v_caches[layer], tables, query_seq, query_pos, 0, scale, out);
      layer = (layer + 1) % layers;
    };
    for (int i = 0; i < 5; ++i) call();
    synchronize_device(gpu);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) call();
    synchronize_device(gpu);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
    std::printf("RESULT {\"what\":\"tessera_paged_attention\",\"batch\":%ld,\"context\":%ld,\"hq\":%ld,\"hkv\":%ld,"
                "\"d\":%ld,\"us\":%.2f,\"kv_mb\":%.1f,\"kv_gb_per_s\":%.0f}\n",
                batch, context, hq, hkv, d, seconds * 1e6, kv_bytes / 1e6, kv_bytes / seconds / 1e9);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paged_attention_bench: %s\n", e.what());
    return 1;
  }
}
