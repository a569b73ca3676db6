// ops::sample_rows on the GPU, per filter combination, against argmax_rows (the greedy floor):
//   bench/sample_bench [ROWS=64] [VOCAB=128256] [iters=50]
// f32 logits [ROWS, VOCAB] of spread 3 (an LLM's rows are a few units wide), every row drawing
// with its own counter. Prints one line per combination:
// RESULT {"what":"tessera_sample_rows","filters":...,"histogram":...,"rows":...,"vocab":...,"us":...}
// (time per call, all rows), for each TESSERA_SAMPLE_HISTOGRAM variant. Runs on cuda:0.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"
#include "kernels/sampling_row.h"

using namespace tessera;

int main(int argc, char** argv) {
  try {
    const int64_t rows = argc > 1 ? std::stoll(argv[1]) : 64, vocab = argc > 2 ? std::stoll(argv[2]) : 128256;
    const int iters = argc > 3 ? std::stoi(argv[3]) : 50;
    TS_CHECK(rows > 0 && vocab > 0 && iters > 0, "usage: sample_bench [ROWS] [VOCAB] [iters]");
    TS_CHECK(cuda_device_count() > 0, "sample_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    Tensor logits = Tensor::empty({rows, vocab}, DType::F32, gpu);
    ops::fill_normal(logits, 5, 0, 0.0f, 3.0f);
    Tensor index = Tensor::empty({rows}, DType::I32, gpu), logprob = Tensor::empty({rows}, DType::F32, gpu);
    struct Combo {
      const char* name;
      float temperature, top_p, min_p;
      int32_t top_k;
    };
    const Combo combos[] = {{"greedy", 0, 1, 0, 0},           {"temperature", 1, 1, 0, 0},
                            {"top_k_50", 1, 1, 0, 50},        {"top_p_0.9", 1, 0.9f, 0, 0},
                            {"min_p_0.05", 1, 1, 0.05f, 0},   {"top_k_50_top_p_0.9_min_p_0.05", 0.8f, 0.9f, 0.05f, 50}};
    auto time_us = [&](auto&& call) {
      for (int i = 0; i < 3; ++i) call();
      synchronize_device(gpu);
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) call();
      synchronize_device(gpu);
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / iters;
    };
    const double argmax_us = time_us([&] { ops::argmax_rows(index, logprob, logits); });
    std::printf("RESULT {\"what\":\"tessera_argmax_rows\",\"filters\":\"argmax_rows\",\"histogram\":\"-\",\"rows\":%ld,"
                "\"vocab\":%ld,\"us\":%.1f}\n",
                rows, vocab, argmax_us);
    for (const Combo& c : combos) {
      std::vector<SamplingRow> params;
      for (int64_t r = 0; r < rows; ++r)
        params.push_back(sampling_row(c.temperature, c.top_p, c.min_p, c.top_k, 1234, uint64_t(r)));
      const Tensor p = sampling_params(params).to(gpu);
      for (const char* histogram : {"warp", "atomic"}) {  // TESSERA_SAMPLE_HISTOGRAM
        setenv("TESSERA_SAMPLE_HISTOGRAM", histogram, 1);
        const double us = time_us([&] { ops::sample_rows(index, logprob, logits, p); });
        std::printf("RESULT {\"what\":\"tessera_sample_rows\",\"filters\":\"%s\",\"histogram\":\"%s\",\"rows\":%ld,"
                    "\"vocab\":%ld,\"us\":%.1f}\n",
                    c.name, histogram, rows, vocab, us);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sample_bench: %s\n", e.what());
    return 1;
  }
}
