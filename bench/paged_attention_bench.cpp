// Decode attention over the paged KV cache through the op table, under each kernel form:
//   bench/paged_attention_bench BATCH CONTEXT [Hq=32] [Hkv=8] [D=128] [iters=20]
// One query token per sequence (a decode step) at position CONTEXT - 1, bf16, blocks of 16 slots
// handed out in shuffled order. Calls cycle over enough layers' caches (>= 512 MiB in all) that
// the KV never sits in L2 from one call to the next, as in a model; one pass over the layers is
// a CUDA graph (with programmatic dependent launch, as the decode step runs), replayed `iters`
// times, so the time is the device's, not the launches'. Prints a line per form:
// RESULT {"what":"tessera_paged_attention","form":"v1", ...} (TESSERA_PAGED_ATTN v1, v2, v4) with the
// time per call and the GB/s of KV read (BATCH x CONTEXT x Hkv x D x 2 bytes, keys and values),
// then RESULT {"what":"tessera_rope_paged_attention", ...} for a decode step's RoPE, KV write and
// attention: v1 and v2 as rope_kv_write then paged_attention, v3 and v4 in one launch. Runs on cuda:0.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/launch_overlap.h"
#include "kernels/ops.h"

using namespace tessera;

namespace {

// Microseconds per call of call(layer) over `layers` layers: a graph of one pass, replayed.
double time_per_call(const std::function<void(int64_t)>& call, int64_t layers, int iters, const Device& gpu) {
  const Stream stream = current_stream(gpu.index);
  CudaGraph graph;
  {
    const ops::LaunchOverlap overlap;
    for (int64_t l = 0; l < layers; ++l) call(l);  // warms the allocator's cache for the capture
    graph.capture(stream, [&] {
      for (int64_t l = 0; l < layers; ++l) call(l);
    });
  }
  graph.replay(stream);
  Event start(true), end(true);
  start.record(stream);
  for (int i = 0; i < iters; ++i) graph.replay(stream);
  end.record(stream);
  synchronize_device(gpu);
  return elapsed_ms(start, end) * 1e3 / (double(iters) * layers);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TS_CHECK(argc >= 3, "usage: paged_attention_bench BATCH CONTEXT [Hq] [Hkv] [D] [iters]");
    const int64_t batch = std::stoll(argv[1]), context = std::stoll(argv[2]);
    const int64_t hq = argc > 3 ? std::stoll(argv[3]) : 32, hkv = argc > 4 ? std::stoll(argv[4]) : 8;
    const int64_t d = argc > 5 ? std::stoll(argv[5]) : 128;
    const int iters = argc > 6 ? std::stoi(argv[6]) : 20;
    TS_CHECK(batch > 0 && context > 0 && iters > 0, "paged_attention_bench: BATCH, CONTEXT and iters must be positive");
    TS_CHECK(cuda_device_count() > 0, "paged_attention_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    constexpr int64_t block_size = 16;

    const int64_t blocks_per_seq = (context + block_size - 1) / block_size, blocks = batch * blocks_per_seq;
    std::vector<int32_t> pool(blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937_64(7));
    std::vector<int32_t> seqs(batch), positions(batch, int32_t(context - 1)), slots(batch);
    std::iota(seqs.begin(), seqs.end(), 0);
    for (int64_t s = 0; s < batch; ++s)
      slots[s] = int32_t(pool[s * blocks_per_seq + (context - 1) / block_size] * block_size + (context - 1) % block_size);
    const Tensor tables = Tensor::from_vector(pool, {batch, blocks_per_seq}, DType::I32).to(gpu);
    const Tensor query_seq = Tensor::from_vector(seqs, {batch}, DType::I32).to(gpu);
    const Tensor query_pos = Tensor::from_vector(positions, {batch}, DType::I32).to(gpu);
    const Tensor new_slots = Tensor::from_vector(slots, {batch}, DType::I32).to(gpu);
    std::vector<float> freq(d / 2);
    for (int64_t i = 0; i < d / 2; ++i) freq[i] = float(std::pow(500000.0, -2.0 * i / d));
    const Tensor inv_freq = Tensor::from_vector(freq, {d / 2}, DType::F32).to(gpu);

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
    auto random = [&](Shape shape, uint64_t seed) {
      Tensor t = Tensor::empty(std::move(shape), DType::BF16, gpu);
      ops::fill_normal(t, seed, 0, 0, 1);
      return t;
    };
    Tensor q = random({batch, hq, d}, 3), k = random({batch, hkv, d}, 4), v = random({batch, hkv, d}, 5);
    Tensor out = Tensor::empty(q.shape(), DType::BF16, gpu);
    const float scale = 1.0f / std::sqrt(float(d));

    const auto attention = [&](int64_t l) {
      ops::paged_attention(q, k_caches[l], v_caches[l], tables, query_seq, query_pos, 0, scale, out);
    };
    const auto rope_attention = [&](int64_t l) {  // q and k are consumed: the same buffers serve every call
      ops::rope_paged_attention(q, k, v, query_pos, inv_freq, 1.0f, Tensor(), Tensor(), 1e-6f, new_slots, k_caches[l],
                                v_caches[l], tables, query_seq, 0, scale, out);
    };
    struct Row {
      const char* what;
      const char* form;
      std::function<void(int64_t)> call;
    };
    const Row rows[] = {{"tessera_paged_attention", "v1", attention},
                        {"tessera_paged_attention", "v2", attention},
                        {"tessera_paged_attention", "v4", attention},
                        {"tessera_rope_paged_attention", "v1", rope_attention},
                        {"tessera_rope_paged_attention", "v2", rope_attention},
                        {"tessera_rope_paged_attention", "v3", rope_attention},
                        {"tessera_rope_paged_attention", "v4", rope_attention}};
    for (const Row& row : rows) {
      setenv("TESSERA_PAGED_ATTN", row.form, 1);
      const double us = time_per_call(row.call, layers, iters, gpu);
      std::printf("RESULT {\"what\":\"%s\",\"form\":\"%s\",\"batch\":%ld,\"context\":%ld,\"hq\":%ld,\"hkv\":%ld,"
                  "\"d\":%ld,\"us\":%.2f,\"kv_mb\":%.1f,\"kv_gb_per_s\":%.0f}\n",
                  row.what, row.form, batch, context, hq, hkv, d, us, kv_bytes / 1e6, kv_bytes / us / 1e3);
    }
    unsetenv("TESSERA_PAGED_ATTN");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paged_attention_bench: %s\n", e.what());
    return 1;
  }
}
