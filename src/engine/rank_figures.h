// Each rank's figures for the trainer's metrics endpoint: where its step time went (compute,
// waiting on collectives, the optimizer, checkpoints, data loading), its memory, NVMe traffic and
// GPU, sent to rank 0 at log steps in one small all-gather.
#pragma once

#include <chrono>
#include <vector>

#include "comm/communicator.h"
#include "core/device.h"

namespace tessera {

// Seconds spent in each phase since this process started training. Host-side clocks: on GPUs,
// kernels queued but not waited for count where the host waits for them (compute, at the step's
// end when the device is synchronised).
struct PhaseSeconds {
  double compute = 0, collectives = 0, optimizer = 0, checkpoint = 0, data = 0;
};

// Splits each step's wall time into PhaseSeconds; collectives are Work::blocked_seconds() of this
// (the training) thread.
class PhaseClock {
 public:
  void start_step();
  void data_ready();                         // the step's micro-batches are made
  void end_step(double optimizer_seconds);   // after the device is synchronised
  void add_checkpoint(double seconds) { totals_.checkpoint += seconds; }
  double step_seconds() const { return step_seconds_; }  // the last step's wall time
  double data_seconds() const { return data_seconds_; }  // ... of it, making its batches
  const PhaseSeconds& totals() const { return totals_; }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_, data_ready_;
  double blocked_at_start_ = 0, step_seconds_ = 0, data_seconds_ = 0;
  PhaseSeconds totals_;
};

struct RankFigures {
  double memory_bytes = 0, peak_memory_bytes = 0;  // the training device's (on the CPU: host memory)
  double host_memory_bytes = 0;                    // host tensors and pinned buffers
  double nvme_read_bytes = 0, nvme_written_bytes = 0;
  double gpu_utilization = -1, gpu_power_watts = -1;  // -1: not known (no NVML, or the CPU)
  PhaseSeconds seconds;
};

RankFigures rank_figures(Device device, const PhaseSeconds& seconds);

// Every rank calls it at the same steps; rank 0 gets all ranks' figures (rank order), the others
// an empty vector.
std::vector<RankFigures> gather_rank_figures(Communicator& host, const RankFigures& mine);

}  // namespace tessera
