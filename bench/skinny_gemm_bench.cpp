// The small-M gemm kernels side by side: bench/skinny_gemm_bench [1b|8b ...] [--m 1,2,4,...].
// For each projection of the shape (a decode step's qkv, o, gate_up, down and lm_head, C = A W^T
// with W [N, K] bf16), each M and each kernel ops::gemm can run for it (kernels/gemm_shape.h
// SmallMChoice: cuBLASLt, the gemv up to 4 rows, and the gemv launched to overlap the call
// before, kernels/launch_overlap.h; the gemv in its persistent and split forms,
// kernels/gemv_form.h): microseconds per call and the weight's
// TB/s, in a markdown table with the fastest kernel per row. Calls are timed in a CUDA graph (as
// decode steps run) cycling through enough copies of the weight (>= 256 MB) that it comes from
// HBM, not the 50 MB L2. Then, per M, a decode step's projections (layers x 4 + lm_head) summed
// for each kernel: the line that picks the default. Runs on cuda:0.
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda_graph.h"
#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/gemv_form.h"
#include "kernels/launch_overlap.h"
#include "kernels/ops.h"

using namespace tessera;

namespace {

const Device gpu = Device::cuda(0);

struct Projection {
  std::string name;
  int64_t n, k;
  int per_step;  // calls per decode step
};

std::vector<Projection> projections(const std::string& shape) {
  if (shape == "1b")
    return {{"qkv", 3072, 2048, 16}, {"o", 2048, 2048, 16}, {"gate_up", 16384, 2048, 16}, {"down", 2048, 8192, 16},
            {"lm_head", 128256, 2048, 1}};
  if (shape == "8b")
    return {{"qkv", 6144, 4096, 32}, {"o", 4096, 4096, 32}, {"gate_up", 28672, 4096, 32}, {"down", 4096, 14336, 32},
            {"lm_head", 128256, 4096, 1}};
  throw Error("skinny_gemm_bench: unknown shape '" + shape + "' (1b or 8b)");
}

struct Variant {
  std::string name;
  SmallMChoice choice;
  int64_t max_m;
  bool overlap = false;  // launched to overlap the previous call (kernels/launch_overlap.h)
  ops::GemvForm form = ops::GemvForm::Rows;
};

// The gemv forms with PDL (without it they lost on 18 of 20 rows, session 10 call B).
const std::vector<Variant> kVariants = {
    {"cublas", {SmallMKernel::CuBlas}, 64},
    {"persistent_pdl", {SmallMKernel::Gemv}, 4, true, ops::GemvForm::Persistent},
    {"split4_pdl", {SmallMKernel::Gemv}, 4, true, ops::GemvForm::Split4}};

// Microseconds per call of gemm(c, a, w[i]) for i cycling through the copies, in a graph (whose
// kernels overlap their predecessors with `overlap`).
double us_per_call(const Tensor& c, const Tensor& a, const std::vector<Tensor>& w, bool overlap) {
  const ops::LaunchOverlap scope(overlap);
  const int calls = std::max<int>(8, 2 * int(w.size()));
  const Stream stream = current_stream(gpu.index);
  auto work = [&] {
    for (int i = 0; i < calls; ++i) ops::gemm(c, a, w[i % w.size()], false, true);
  };
  work();  // eager first: plans and lazy initialisation outside the capture
  CudaGraph graph;
  graph.capture(stream, work);
  graph.replay(stream);
  Event start(true), end(true);
  const int replays = 5;
  start.record(stream);
  for (int r = 0; r < replays; ++r) graph.replay(stream);
  end.record(stream);
  end.synchronize();
  return 1e3 * elapsed_ms(start, end) / (replays * calls);
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> shapes;
    std::vector<int64_t> ms = {1, 2, 4, 8, 16, 32, 64};
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--m" && i + 1 < argc) {
        ms.clear();
        std::stringstream list(argv[++i]);
        for (std::string item; std::getline(list, item, ',');) ms.push_back(std::stoll(item));
      } else {
        shapes.push_back(arg);
      }
    }
    if (shapes.empty()) shapes = {"1b", "8b"};
    TS_CHECK(cuda_device_count() > 0, "skinny_gemm_bench needs a GPU: {}", cuda_unavailable_reason());
    for (int64_t m : ms) TS_CHECK(m >= 1 && m <= 64, "skinny_gemm_bench: --m {} is outside 1..64", m);
    const SmallMChoice before = ops::small_m_choice();
    const ops::GemvForm form_before = ops::gemv_form();
    std::vector<std::string> names;
    for (const Variant& v : kVariants) names.push_back(v.name);
    std::printf("| shape projection NxK | M | %s | fastest (TB/s) |\n", join(names, " us | ").c_str());
    std::string sep = "| --- | --- |";
    for (size_t i = 0; i <= names.size(); ++i) sep += " --- |";
    std::printf("%s\n", sep.c_str());
    // step_us[shape][m][variant]: a decode step's projections with that kernel (cuBLASLt where it cannot run).
    std::map<std::string, std::map<int64_t, std::map<std::string, double>>> step_us;
    for (const std::string& shape : shapes) {
      for (const Projection& p : projections(shape)) {
        const int64_t bytes = p.n * p.k * 2;
        const int copies = int(std::max<int64_t>(2, (int64_t(256) << 20) / bytes + 1));
        std::vector<Tensor> w(copies);
        for (int i = 0; i < copies; ++i) {
          w[i] = Tensor::empty({p.n, p.k}, DType::BF16, gpu);
          ops::fill_normal(w[i], 7 + i, 0, 0.0f, 0.02f);
        }
        const DType out = p.name == "lm_head" ? DType::F32 : DType::BF16;  // as the model's
        for (int64_t m : ms) {
          Tensor a = Tensor::empty({m, p.k}, DType::BF16, gpu), c = Tensor::empty({m, p.n}, out, gpu);
          ops::fill_normal(a, 3, 0, 0.0f, 1.0f);
          std::vector<std::string> cells;
          std::string best;
          double best_us = 0, cublas_us = 0;
          for (const Variant& v : kVariants) {
            if (m > v.max_m) {
              cells.push_back("-");
              step_us[shape][m][v.name] += p.per_step * cublas_us;
              continue;
            }
            ops::set_small_m_choice(v.choice);
            ops::set_gemv_form(v.form);
            const double us = us_per_call(c, a, w, v.overlap);
            if (v.name == "cublas") cublas_us = us;
            step_us[shape][m][v.name] += p.per_step * us;
            char cell[32];
            std::snprintf(cell, sizeof cell, "%.1f", us);
            cells.push_back(cell);
            if (best.empty() || us < best_us) best = v.name, best_us = us;
          }
          std::printf("| %s %s %ldx%ld | %ld | %s | %s (%.2f) |\n", shape.c_str(), p.name.c_str(), p.n, p.k, m,
                      join(cells, " | ").c_str(), best.c_str(), bytes / best_us / 1e6);
          std::fflush(stdout);
        }
      }
    }
    ops::set_small_m_choice(before);
    ops::set_gemv_form(form_before);
    std::printf("\n| decode step's projections (shape, M) | %s | fastest |\n", join(names, " ms | ").c_str());
    std::printf("%s\n", sep.c_str());
    for (const auto& [shape, by_m] : step_us)
      for (const auto& [m, by_variant] : by_m) {
        std::vector<std::string> cells;
        std::string best;
        double best_ms = 0;
        for (const Variant& v : kVariants) {
          const double ms_step = by_variant.at(v.name) / 1e3;
          char cell[32];
          std::snprintf(cell, sizeof cell, "%.3f", ms_step);
          cells.push_back(cell);
          if (best.empty() || ms_step < best_ms) best = v.name, best_ms = ms_step;
        }
        std::printf("| %s M=%ld | %s | %s |\n", shape.c_str(), m, join(cells, " | ").c_str(), best.c_str());
      }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "skinny_gemm_bench: %s\n", e.what());
    return 1;
  }
}
