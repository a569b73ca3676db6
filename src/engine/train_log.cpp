#include "engine/train_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fault_injection.h"
#include "core/log.h"
#include "core/memory.h"
#include "engine/train_metrics.h"

namespace tessera {

namespace {

// Dense bf16 peak TFLOP/s of the GPUs people train on, by name; 0 for others.
double peak_bf16_tflops(Device device) {
  if (!device.is_cuda()) return 0;
  const std::string name = device_name(device);
  struct Peak { const char* name; double tflops; };
  static constexpr Peak peaks[] = {{"H100 PCIe", 756}, {"H100", 989}, {"H200", 989}, {"H800", 989},
                                   {"A100", 312}, {"L40S", 362}, {"A6000", 155}, {"4090", 165}};
  for (const Peak& p : peaks)
    if (name.find(p.name) != std::string::npos) return p.tflops;
  return 0;
}

}  // namespace

TrainLog::TrainLog(bool speaker, const std::string& metrics_file, int64_t every_steps, Device device)
    : speaker_(speaker),
      metrics_file_(metrics_file),
      every_steps_(every_steps),
      device_(device),
      peak_tflops_(peak_bf16_tflops(device)),
      terminal_(isatty(STDERR_FILENO) == 1) {
  if (!speaker_ || metrics_file.empty()) return;
  const auto parent = std::filesystem::path(metrics_file).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  metrics_ = std::fopen(metrics_file.c_str(), "a");
  TS_CHECK(metrics_, "log.metrics_file: cannot open {} for appending", metrics_file);
}

TrainLog::~TrainLog() {
  if (metrics_ && std::fclose(metrics_) != 0 && metrics_error_.empty()) metrics_error_ = error_text(errno);
  if (!metrics_error_.empty())
    spdlog::error("log.metrics_file: {} is incomplete: {}", metrics_file_, metrics_error_);
}

// One JSON object on one line; numbers in their shortest exact form, a non-finite one as null.
void TrainLog::write_row(int64_t step, const nlohmann::ordered_json& row) {
  if (!metrics_) return;
  const std::string line = row.dump() + "\n";
  const bool written = std::fwrite(line.data(), 1, line.size(), metrics_) == line.size();
  const bool flushed = written && std::fflush(metrics_) == 0;
  const int injected = injected_write_error(metrics_file_);
  if (flushed && !injected) return;
  // A full disk must not leave a silently truncated file: say so loudly, now and at the end, and
  // stop writing (training goes on; its checkpoints are what must not be lost).
  metrics_error_ = fmt::format("writing failed at step {}: {}", step,
                               injected ? error_text(injected, true) : error_text(errno));
  spdlog::error("log.metrics_file: cannot write {} ({}); no more metrics go to it", metrics_file_, metrics_error_);
  std::fclose(metrics_);
  metrics_ = nullptr;
}

void TrainLog::step(const StepLog& s) {
  if (!speaker_) return;
  const double tok_per_s = s.seconds > 0 ? s.tokens / s.seconds : 0;
  const double tflops = s.seconds > 0 ? s.flops / s.seconds / 1e12 / s.world : 0;  // per rank
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (first_step_ < 0) first_step_ = s.step;
  const double eta = elapsed / static_cast<double>(s.step - first_step_ + 1) * (s.total_steps - s.step);
  const double mem_gib = memory_stats(device_).peak_allocated / 1073741824.0;
  const std::string mfu = peak_tflops_ > 0 ? fmt::format(" (MFU {:.1f}%)", 100.0 * tflops / peak_tflops_) : "";
  if (metrics_endpoint_)
    metrics_endpoint_->step(s, {.tokens_per_s = tok_per_s, .tflops_per_rank = tflops,
                                .mfu = peak_tflops_ > 0 ? tflops / peak_tflops_ : -1});
  const bool logged = logs(s.step, s.total_steps);
  if (!logged) {
    if (terminal_)
      std::fprintf(stderr, "\r\033[Kstep %ld/%ld | loss %.4f | %.0f tok/s | %.1f TFLOP/s%s | ETA %.0fs", s.step,
                   s.total_steps, s.loss, tok_per_s, tflops, mfu.c_str(), eta);
    return;
  }
  if (terminal_) std::fprintf(stderr, "\r\033[K");
  // The step's wall time that the device spent on neither: the host's batches, syncs, launches.
  const double host = std::max(0.0, s.seconds - s.forward_backward_seconds - s.update_seconds);
  const std::string behind = s.behind_seconds > 0 ? fmt::format(" (last AdamW behind {:.1f} ms)", s.behind_seconds * 1e3) : "";
  spdlog::info("step {}/{} | loss {:.4f} | lr {:.2e} | grad_norm {:.3f}{} | {:.0f} tok/s | {:.1f} TFLOP/s per rank{} | "
               "fwd+bwd {:.1f} ms{}, norm {:.1f} ms, adamw {:.1f} ms, host {:.1f} ms (data {:.1f}) | peak {:.2f} GiB | ETA {:.0f}s",
               s.step, s.total_steps, s.loss, s.lr, s.grad_norm, s.skipped ? " (skipped)" : "", tok_per_s, tflops, mfu,
               s.forward_backward_seconds * 1e3, behind, s.norm_seconds * 1e3,
               (s.update_seconds - s.norm_seconds) * 1e3, host * 1e3, s.data_seconds * 1e3, mem_gib, eta);
  write_row(s.step, nlohmann::ordered_json{{"step", s.step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm},
                                           {"tokens_per_s", tok_per_s}, {"tflops_per_rank", tflops},
                                           {"peak_memory_gib", mem_gib}, {"forward_backward_s", s.forward_backward_seconds},
                                           {"update_s", s.update_seconds}, {"norm_s", s.norm_seconds},
                                           {"adamw_s", s.update_seconds - s.norm_seconds}, {"behind_s", s.behind_seconds},
                                           {"host_s", host}, {"data_s", s.data_seconds}, {"skipped", s.skipped}});
}

void TrainLog::eval(int64_t step, double eval_loss) {
  if (!speaker_) return;
  spdlog::info("step {} | eval_loss {:.4f}", step, eval_loss);
  if (metrics_endpoint_) metrics_endpoint_->eval(step, eval_loss);
  write_row(step, nlohmann::ordered_json{{"step", step}, {"eval_loss", eval_loss}});
}

}  // namespace tessera
