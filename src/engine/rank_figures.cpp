#include "engine/rank_figures.h"

#include <algorithm>
#include <bit>

#include "core/memory.h"
#include "engine/metrics/gpu_metrics.h"
#include "offload/nvme_file.h"

namespace tessera {

namespace {

// The figures as a flat list of doubles, in one fixed order, for the gather.
std::vector<double> flatten(const RankFigures& f) {
  const PhaseSeconds& s = f.seconds;
  return {f.memory_bytes, f.peak_memory_bytes, f.host_memory_bytes, f.nvme_read_bytes, f.nvme_written_bytes,
          f.gpu_utilization, f.gpu_power_watts, s.compute, s.collectives, s.optimizer, s.checkpoint, s.data};
}

RankFigures unflatten(const double* v) {
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], {v[7], v[8], v[9], v[10], v[11]}};
}

}  // namespace

void PhaseClock::start_step() {
  start_ = Clock::now();
  blocked_at_start_ = Work::blocked_seconds();
}

void PhaseClock::data_ready() {
  data_ready_ = Clock::now();
  data_seconds_ = std::chrono::duration<double>(data_ready_ - start_).count();
  totals_.data += data_seconds_;
}

void PhaseClock::end_step(double optimizer_seconds) {
  const Clock::time_point now = Clock::now();
  step_seconds_ = std::chrono::duration<double>(now - start_).count();
  const double collectives = Work::blocked_seconds() - blocked_at_start_;
  totals_.collectives += collectives;
  totals_.optimizer += optimizer_seconds;
  totals_.compute +=
      std::max(0.0, std::chrono::duration<double>(now - data_ready_).count() - collectives - optimizer_seconds);
}

RankFigures rank_figures(Device device, const PhaseSeconds& seconds) {
  const MemoryStats mem = memory_stats(device), host = memory_stats(Device::cpu());
  RankFigures f{.memory_bytes = double(mem.allocated), .peak_memory_bytes = double(mem.peak_allocated),
                .host_memory_bytes = double(host.allocated),
                .nvme_read_bytes = double(offload::NvmeFile::bytes_read_total()),
                .nvme_written_bytes = double(offload::NvmeFile::bytes_written_total()), .gpu_utilization = -1,
                .gpu_power_watts = -1, .seconds = seconds};
  if (device.is_cuda()) {
    const metrics::GpuSample gpu = metrics::sample_gpu(device.index);
    if (gpu.ok) f.gpu_utilization = gpu.utilization, f.gpu_power_watts = gpu.power_watts;
  }
  return f;
}

std::vector<RankFigures> gather_rank_figures(Communicator& host, const RankFigures& mine) {
  // Doubles travel as their bits in an I64 tensor (collectives move elements; there is no F64).
  const std::vector<double> flat = flatten(mine);
  const int64_t n = static_cast<int64_t>(flat.size());
  std::vector<int64_t> bits(flat.size());
  for (size_t i = 0; i < flat.size(); ++i) bits[i] = std::bit_cast<int64_t>(flat[i]);
  const Tensor in = Tensor::from_vector<int64_t>(bits, {n}, DType::I64);
  const Tensor out = Tensor::empty({n * host.size()}, DType::I64);
  host.all_gather(out, in).wait();
  if (host.rank() != 0) return {};
  std::vector<RankFigures> all;
  const int64_t* got = out.data_as<int64_t>();
  for (int r = 0; r < host.size(); ++r) {
    std::vector<double> v(flat.size());
    for (int64_t i = 0; i < n; ++i) v[i] = std::bit_cast<double>(got[r * n + i]);
    all.push_back(unflatten(v.data()));
  }
  return all;
}

}  // namespace tessera
