#include "engine/train_log.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"

namespace tessera {

TrainLog::TrainLog(bool speaker, const std::string& metrics_file, Device device) : speaker_(speaker), device_(device) {
  if (!speaker_ || metrics_file.empty()) return;
  const auto parent = std::filesystem::path(metrics_file).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  metrics_ = std::fopen(metrics_file.c_str(), "a");
  TS_CHECK(metrics_, "log.metrics_file: cannot open {} for appending", metrics_file);
}

TrainLog::~TrainLog() {
  if (metrics_) std::fclose(metrics_);
}

void TrainLog::step(const StepLog& s) {
  if (!speaker_) return;
  const double tok_per_s = s.seconds > 0 ? s.tokens / s.seconds : 0;
  const double tflops = s.seconds > 0 ? s.flops / s.seconds / 1e12 / s.world : 0;  // per rank
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = s.step > 0 ? elapsed / s.step * (s.total_steps - s.step) : 0;
  const double mem_gib = memory_stats(device_).peak_allocated / 1073741824.0;
  spdlog::info("step {}/{} | loss {:.4f} | lr {:.2e} | grad_norm {:.3f}{} | {:.0f} tok/s | {:.1f} TFLOP/s per rank | "
               "peak {:.2f} GiB | ETA {:.0f}s",
               s.step, s.total_steps, s.loss, s.lr, s.grad_norm, s.skipped ? " (skipped: not finite)" : "", tok_per_s,
               tflops, mem_gib, eta);
  if (metrics_) {
    std::fprintf(metrics_,
                 "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens_per_s\": %.1f, "
                 "\"tflops_per_rank\": %.2f, \"skipped\": %s}\n",
                 s.step, s.loss, s.lr, s.grad_norm, tok_per_s, tflops, s.skipped ? "true" : "false");
    std::fflush(metrics_);
  }
}

void TrainLog::eval(int64_t step, double eval_loss) {
  if (!speaker_) return;
  spdlog::info("step {} | eval_loss {:.4f}", step, eval_loss);
  if (metrics_) {
    std::fprintf(metrics_, "{\"step\": %ld, \"eval_loss\": %.6f}\n", step, eval_loss);
    std::fflush(metrics_);
  }
}

}  // namespace tessera
