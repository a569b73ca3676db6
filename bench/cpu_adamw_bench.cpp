// CPU AdamW throughput (the offloaded optimizer) against this host's memory bandwidth.
// bench/cpu_adamw_bench [million params = 250] [steps = 5]
// Prints RESULT {json}: parameters/s, GB/s moved (30 bytes per parameter: read p, g, m, v; write
// p, m, v and the bf16 working copy) and the host's bandwidth on a STREAM-style triad for the ratio.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "kernels/ops.h"

using namespace tessera;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  const int64_t n = (argc > 1 ? std::stoll(argv[1]) : 250) * 1000000;
  const int steps = argc > 2 ? std::stoi(argv[2]) : 5;
  Tensor p = Tensor::empty({n}, DType::F32), g = Tensor::empty({n}, DType::F32);
  Tensor m = Tensor::empty({n}, DType::F32), v = Tensor::empty({n}, DType::F32), low = Tensor::empty({n}, DType::BF16);
  ops::fill_normal(p, 1, 0, 0, 1);
  ops::fill_normal(g, 2, 0, 0, 1);
  ops::fill(m, 0);
  ops::fill(v, 0);
  ops::AdamWStep s{.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
  ops::adamw(p, g, m, v, s, low);  // warm-up: touches every page
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    s.step = i + 2;
    ops::adamw(p, g, m, v, s, low);
  }
  const double step_s = seconds_since(start) / steps;
  // Reference bandwidth: the triad m = p + 0.5 g over the same arrays (12 bytes per element).
  float* a = m.data_as<float>();
  const float *b = p.data_as<float>(), *c = g.data_as<float>();
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) a[j] = b[j] + 0.5f * c[j];
  }
  const double copy_gbps = 12.0 * n * steps / seconds_since(start) / 1e9;
  const double gbps = 30.0 * n / step_s / 1e9;
  std::printf("RESULT {\"what\":\"tessera_cpu_adamw\",\"params\":%ld,\"threads\":%d,\"s_per_step\":%.3f,"
              "\"Mparams_per_s\":%.0f,\"GB_per_s\":%.1f,\"triad_GB_per_s\":%.1f,\"of_bandwidth\":%.2f}\n",
              n, omp_get_max_threads(), step_s, n / step_s / 1e6, gbps, copy_gbps, gbps / copy_gbps);
  return 0;
}
