// The optimizer step's memory traffic on one GPU, and whether it can run beside compute:
//   bench/optimizer_bench [1b|3b] [iters=5]
// over the ZeRO units of the Llama-3.2-1B or -3B shape (one rank: whole units), as the store
// steps them (adamw_ranges: one ops::adamw_spans per unit). Rows (RESULT lines, JSON):
//   copy         a device-to-device copy of 4 GiB: the HBM rate this GPU reaches (read + write);
//   adamw        every unit's AdamW (30 bytes a parameter: p, g, m, v read; p, m, v, bf16 copy
//                written), ms and TB/s; TESSERA_ADAMW=ranges picks the one-launch-per-tensor kernel;
//   sum_squares  every unit's squared gradient norm (4 bytes a parameter);
//   overlap      bf16 gemms (8192^3) on one stream and the AdamW pass on a second, low-priority one,
//                launched together, with the gemm stream at the same or at the highest priority:
//                hidden = (gemm alone + adamw alone - both) / adamw alone, 1 when the AdamW runs
//                entirely beside the gemms, 0 when the two take turns;
//   fill         zeroing every gradient (4 bytes a parameter): what each backward of the sequential
//                step does first (zero.overlap_step's update zeroes them as it reads them);
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"
#include "model/model_config.h"
#include "model/model_config_params.h"
#include "zero/optimizer_state.h"
#include "zero/units.h"

using namespace tessera;

namespace {

ModelConfig shape(const std::string& name) {
  TS_CHECK(name == "1b" || name == "3b", "optimizer_bench: shape must be 1b or 3b, got '{}'", name);
  const bool big = name == "3b";
  return ModelConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", 128256}, {"hidden_size", big ? 3072 : 2048},
                     {"intermediate_size", 8192}, {"num_hidden_layers", big ? 28 : 16},
                     {"num_attention_heads", big ? 24 : 32}, {"num_key_value_heads", 8},
                     {"max_position_embeddings", 4096}, {"tie_word_embeddings", true}},
      name);
}

// One unit's state on the device, as the device optimizer state holds it.
struct UnitBuffers {
  UnitShard shard;
  UnitState state;
  Tensor grad, low;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Host seconds per run of fn over `iters` runs, the device drained before and after.
template <typename Fn>
double timed(Device gpu, int iters, Fn&& fn) {
  fn();  // warm-up
  synchronize_device(gpu);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  synchronize_device(gpu);
  return seconds_since(start) / iters;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string name = argc > 1 ? argv[1] : "1b";
    const int iters = argc > 2 ? std::stoi(argv[2]) : 5;
    TS_CHECK(cuda_device_count() > 0, "optimizer_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    const char* kernel_env = std::getenv("TESSERA_ADAMW");
    const std::string kernel = kernel_env && std::string(kernel_env) == "ranges" ? "ranges" : "spans";

    {
      Tensor a = Tensor::empty({int64_t(1) << 30}, DType::F32, gpu), b = Tensor::empty({int64_t(1) << 30}, DType::F32, gpu);
      ops::fill(a, 1.0f);
      const double s = timed(gpu, iters, [&] { copy_bytes(b, a, /*async=*/true); });
      std::printf("RESULT {\"what\":\"copy\",\"gib\":4,\"ms\":%.3f,\"tb_per_s\":%.3f}\n", s * 1e3,
                  2.0 * a.nbytes() / s / 1e12);
    }

    const ModelConfig config = shape(name);
    // The layouts' UnitParams must outlive the ranges that point at them.
    const std::vector<UnitLayout> layouts = model_units(config, model_parameters(config), DType::BF16);
    std::vector<UnitBuffers> units;
    int64_t params = 0;
    for (const UnitLayout& layout : layouts) {
      const ShardLayout whole(layout.numel, 1);
      UnitBuffers u;
      u.shard = {whole.shard, owned_ranges(layout, whole, 0), false};
      for (Tensor* t : {&u.state.master, &u.state.m, &u.state.v, &u.grad})
        *t = Tensor::empty({whole.shard}, DType::F32, gpu);
      u.low = Tensor::empty({whole.shard}, DType::BF16, gpu);
      // Random state: zeros would flatter the power-limited clocks.
      ops::fill_normal(u.state.master, 1, 0, 0, 0.02f);
      ops::fill_normal(u.state.m, 2, 0, 0, 1e-3f);
      ops::fill(u.state.v, 1e-6f);
      ops::fill_normal(u.grad, 3, 0, 0, 1e-3f);
      params += whole.shard;
      units.push_back(std::move(u));
    }

    ops::AdamWStep adam{.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.01f, .step = 1};
    auto step_all = [&] {
      ++adam.step;
      for (UnitBuffers& u : units) adamw_ranges(u.shard, 0, adam, u.state, u.grad, u.low);
    };
    const double adamw_s = timed(gpu, iters, step_all);
    std::printf("RESULT {\"what\":\"adamw\",\"shape\":\"%s\",\"kernel\":\"%s\",\"params\":%ld,\"units\":%zu,\"ms\":%.3f,"
                "\"tb_per_s\":%.3f}\n",
                name.c_str(), kernel.c_str(), params, units.size(), adamw_s * 1e3, 30.0 * params / adamw_s / 1e12);

    Tensor norm_sq = Tensor::empty({1}, DType::F32, gpu);
    const double norm_s = timed(gpu, iters, [&] {
      ops::fill(norm_sq, 0.0f);
      for (UnitBuffers& u : units) ops::sum_squares(norm_sq, u.grad);
    });
    std::printf("RESULT {\"what\":\"sum_squares\",\"shape\":\"%s\",\"ms\":%.3f,\"tb_per_s\":%.3f}\n", name.c_str(),
                norm_s * 1e3, 4.0 * params / norm_s / 1e12);

    // The overlap probe: about as many gemm milliseconds as AdamW milliseconds, or more.
    const int64_t g = 8192;
    Tensor a = Tensor::empty({g, g}, DType::BF16, gpu), b = Tensor::empty({g, g}, DType::BF16, gpu);
    Tensor c = Tensor::empty({g, g}, DType::BF16, gpu);
    ops::fill_normal(a, 4, 0, 0, 1);
    ops::fill_normal(b, 5, 0, 0, 1);
    const Stream side = create_stream(gpu.index, /*high_priority=*/false);
    for (bool high : {false, true}) {
      const Stream compute = create_stream(gpu.index, high);
      const double one_gemm = timed(gpu, 3, [&] {
        StreamGuard on(gpu.index, compute);
        ops::gemm(c, a, b, false, true);
        synchronize_stream(compute);
      });
      const int gemms = std::max(1, static_cast<int>(1.5 * adamw_s / one_gemm));
      auto gemm_run = [&] {
        StreamGuard on(gpu.index, compute);
        for (int i = 0; i < gemms; ++i) ops::gemm(c, a, b, false, true);
      };
      auto adamw_run = [&] {
        StreamGuard on(gpu.index, side);
        step_all();
      };
      auto drain = [&] {
        synchronize_stream(compute);
        synchronize_stream(side);
      };
      const double gemm_alone = timed(gpu, iters, [&] { gemm_run(); drain(); });
      const double adamw_alone = timed(gpu, iters, [&] { adamw_run(); drain(); });
      const double both = timed(gpu, iters, [&] {
        gemm_run();
        adamw_run();
        drain();
      });
      std::printf("RESULT {\"what\":\"overlap\",\"shape\":\"%s\",\"kernel\":\"%s\",\"gemm_stream\":\"%s\",\"gemms\":%d,"
                  "\"gemm_ms\":%.3f,\"adamw_ms\":%.3f,\"both_ms\":%.3f,\"hidden\":%.3f}\n",
                  name.c_str(), kernel.c_str(), high ? "high priority" : "same priority", gemms, gemm_alone * 1e3,
                  adamw_alone * 1e3, both * 1e3, (gemm_alone + adamw_alone - both) / adamw_alone);
      destroy_stream(compute);
    }

    const double fill_s = timed(gpu, iters, [&] {
      for (UnitBuffers& u : units) ops::fill(u.grad, 0.0f);
    });
    std::printf("RESULT {\"what\":\"fill\",\"shape\":\"%s\",\"ms\":%.3f,\"tb_per_s\":%.3f}\n", name.c_str(),
                fill_s * 1e3, 4.0 * params / fill_s / 1e12);
    destroy_stream(side);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "optimizer_bench: %s\n", e.what());
    return 1;
  }
}
