// `tessera selftest`: a short proof that the stack works on this machine: the op table on every
// device this rank has (CUDA results checked against the CPU reference) and a collective across
// all ranks on each communicator. Exits non-zero if any check fails.
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "comm/communicator.h"
#include "core/stream.h"
#include "kernels/ops.h"

namespace tessera::cli {

namespace {

struct Check {
  std::string name;
  double error;
  double tolerance;
  bool ok() const { return error <= tolerance; }
};

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * double(got[i] - want[i]);
    norm += want[i] * double(want[i]);
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

std::vector<float> as_f32(const Tensor& t) { return ops::cast(t.to(Device::cpu()), DType::F32).to_vector<float>(); }

// C = A B^T + bias on `device` against plain loops in double precision on the host.
Check gemm_check(Device device, DType dtype, double tolerance) {
  const int64_t m = 96, n = 80, k = 112;
  Tensor a = Tensor::empty({m, k}, dtype, device), b = Tensor::empty({n, k}, dtype, device);
  Tensor bias = Tensor::empty({n}, dtype, device), c = Tensor::empty({m, n}, dtype, device);
  ops::fill_normal(a, 1, 0, 0, 1);
  ops::fill_normal(b, 2, 0, 0, 1);
  ops::fill_normal(bias, 3, 0, 0, 1);
  ops::gemm(c, a, b, false, true, 1.0f, 0.0f, bias);
  const auto va = as_f32(a), vb = as_f32(b), vbias = as_f32(bias);
  std::vector<float> want(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = vbias[j];
      for (int64_t p = 0; p < k; ++p) acc += double(va[i * k + p]) * vb[j * k + p];
      want[i * n + j] = static_cast<float>(acc);
    }
  return {fmt::format("gemm {} {}", dtype_name(dtype), device.str()), relative_error(as_f32(c), want), tolerance};
}

// Every rank contributes rank + 1 in each element; the sum is size * (size + 1) / 2.
Check all_reduce_check(const World& world, Device device, Communicator& comm, const char* name) {
  Tensor t = Tensor::empty({1000}, DType::F32, device);
  ops::fill(t, static_cast<float>(world.rank + 1));
  comm.all_reduce(t, ReduceOp::Sum).synchronize();
  const double want = world.size * (world.size + 1) / 2.0;
  double worst = 0;
  for (float v : as_f32(t)) worst = std::max(worst, std::abs(v - want));
  return {fmt::format("all_reduce {} x{} ranks", name, world.size), worst, 0.0};
}

void selftest() {
  const World& world = World::init();
  std::vector<Check> checks;
  auto mpi = make_mpi_communicator(world);
  checks.push_back(gemm_check(Device::cpu(), DType::F32, 1e-6));
  checks.push_back(gemm_check(Device::cpu(), DType::BF16, 1e-2));
  checks.push_back(all_reduce_check(world, Device::cpu(), *mpi, "mpi"));
  if (world.device.is_cuda()) {
    checks.push_back(gemm_check(world.device, DType::F32, 1e-5));
    checks.push_back(gemm_check(world.device, DType::BF16, 1e-2));
    auto nccl = make_nccl_communicator(world);
    checks.push_back(all_reduce_check(world, world.device, *nccl, "nccl"));
  }
  bool ok = true;
  for (const auto& c : checks) ok = ok && c.ok();
  // Any rank's failure fails the job: agree on it before rank 0 reports.
  Tensor failed = Tensor::from_vector<int32_t>({ok ? 0 : 1}, {1}, DType::I32);
  mpi->all_reduce(failed, ReduceOp::Max).wait();
  if (world.rank == 0) {
    for (const auto& c : checks)
      std::printf("%-32s error %.2e (tolerance %.0e)  %s\n", c.name.c_str(), c.error, c.tolerance, c.ok() ? "ok" : "FAILED");
    std::printf("selftest: %s on %d rank(s), device %s\n", failed.data_as<int32_t>()[0] ? "FAILED" : "passed",
                world.size, world.device.str().c_str());
  }
  if (failed.data_as<int32_t>()[0]) fail("selftest failed (see the table above; rank {} device {})", world.rank,
                                         world.device.str());
}

}  // namespace

void add_selftest_command(CLI::App& app) {
  app.add_subcommand("selftest", "Check the op table on each device against the CPU reference, and collectives")
      ->callback(selftest);
}

}  // namespace tessera::cli
