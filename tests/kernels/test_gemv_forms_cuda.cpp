// The small-M gemv's forms (kernels/gemv_form.h: a warp per row, persistent warps walking rows,
// those with each row's K split over a block's warps) on fresh random
// inputs: the rows and persistent forms bit for bit the same (each row's sum is the same
// warp's same order of additions), at any blocks a SM, the split forms the same bits run to run,
// all against the CPU reference within the rounding. Through the ops that run the gemv: gemm
// (alpha, beta, bf16/f32 outputs), project_many (1-3 stacked weights, biases, the norm prologue
// with bf16/f32 norm weights), project_add (the residual epilogue) and project_swiglu (with and
// without the norm). Shapes: M = 1..4, K = 8 .. 16384 (one load, short
// of a round, past whole rounds, several rounds), rows not a multiple of anything, and enough rows
// (40,009) that every persistent warp walks several, across the stacked weights' boundaries; the
// split forms on row counts that take them (1003 rows of K 16384, 8B down_proj) and that don't.
#include <gtest/gtest.h>

#include <functional>
#include <iterator>
#include <span>
#include <vector>

#include "kernels/gemv_form.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);
Tensor nan_filled(const Shape& shape, DType dtype) { return nans(shape, dtype, gpu); }  // every element must be written

constexpr ops::GemvForm kForms[] = {ops::GemvForm::Rows, ops::GemvForm::Persistent, ops::GemvForm::Split2,
                                     ops::GemvForm::Split4};

// The GPU outputs `run` writes under each of `forms` (at most blocks_per_sm blocks a SM; 0: all
// that fit): host copies. The small-M choice is the gemv throughout; the choices are restored.
std::vector<std::vector<std::vector<float>>> under_forms(std::span<const ops::GemvForm> forms,
                                                         const std::function<std::vector<Tensor>()>& run,
                                                         int blocks_per_sm = 0) {
  const SmallMChoice kernel_before = ops::small_m_choice();
  const ops::GemvForm form_before = ops::gemv_form();
  const int blocks_before = ops::gemv_blocks_per_sm();
  ops::set_small_m_choice({SmallMKernel::Gemv});
  ops::set_gemv_blocks_per_sm(blocks_per_sm);
  std::vector<std::vector<std::vector<float>>> results;
  for (const ops::GemvForm form : forms) {
    ops::set_gemv_form(form);
    std::vector<std::vector<float>> outs;
    for (const Tensor& t : run()) outs.push_back(host_f32(t));
    results.push_back(std::move(outs));
  }
  ops::set_gemv_form(form_before);
  ops::set_small_m_choice(kernel_before);
  ops::set_gemv_blocks_per_sm(blocks_before);
  return results;
}

// Every form within tol of the CPU's outputs; the persistent form bit for bit the rows form's,
// also with one block a SM (each warp then walks more rows); the split forms the same bits on a
// second run, and (splits_reorder false: where no split applies) the rows form's too.
void expect_forms_agree(const std::function<std::vector<Tensor>()>& run, const std::vector<Tensor>& cpu_outs,
                        double tol, bool splits_reorder = true) {
  const auto results = under_forms(kForms, run);
  const ops::GemvForm splits[] = {ops::GemvForm::Split2, ops::GemvForm::Split4};
  const auto again = under_forms(splits, run);
  const ops::GemvForm walkers[] = {ops::GemvForm::Persistent};
  const auto one_block = under_forms(walkers, run, 1);
  for (size_t i = 0; i < cpu_outs.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "output " << i);
    const std::vector<float> want = host_f32(cpu_outs[i]);
    for (size_t f = 0; f < std::size(kForms); ++f) {
      SCOPED_TRACE(ops::gemv_form_name(kForms[f]));
      ASSERT_EQ(results[f].size(), cpu_outs.size());
      EXPECT_LT(relative_error(results[f][i], want), tol);
    }
    EXPECT_EQ(results[1][i], results[0][i]) << "persistent and rows forms, bit for bit";
    EXPECT_EQ(one_block[0][i], results[0][i]) << "persistent at one block a SM and rows forms";
    EXPECT_EQ(again[0][i], results[2][i]) << "split2 run twice";
    EXPECT_EQ(again[1][i], results[3][i]) << "split4 run twice";
    if (!splits_reorder) {
      EXPECT_EQ(results[2][i], results[0][i]) << "split2 and rows forms";
      EXPECT_EQ(results[3][i], results[0][i]) << "split4 and rows forms";
    }
  }
}

void check_gemm(int64_t m, int64_t n, int64_t k, DType out) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << m << " n " << n << " k " << k << " out "
                                    << dtype_name(out));
  const Tensor a = random_tensor({m, k}, DType::BF16, gpu, seed), w = random_tensor({n, k}, DType::BF16, gpu, seed + 1, 0.05f);
  const Tensor c = random_tensor({m, n}, out, gpu, seed + 2);
  Tensor expect = on_cpu(c);
  ops::gemm(expect, on_cpu(a), on_cpu(w), false, true, 0.5f, 0.75f);
  expect_forms_agree(
      [&] {
        Tensor got = c.clone();
        ops::gemm(got, a, w, false, true, 0.5f, 0.75f);
        return std::vector<Tensor>{got};
      },
      {expect}, out == DType::F32 ? 2e-3 : 1e-2);
}

struct ManyCase {
  int64_t m, k;
  std::vector<int64_t> n;  // rows of each weight
  bool bias = false, norm = false;
  DType dtype = DType::BF16, norm_dtype = DType::BF16;
};

void check_project_many(const ManyCase& c) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << c.m << " k " << c.k << " weights " << c.n.size()
                                    << " bias " << c.bias << " norm " << c.norm << " " << dtype_name(c.dtype));
  const Tensor x = random_tensor({c.m, c.k}, c.dtype, gpu, seed, 2.0f);
  Tensor norm_weight = c.norm ? random_tensor({c.k}, c.norm_dtype, gpu, seed + 1, 0.3f) : Tensor();
  std::vector<Tensor> w, b, cpu_w, cpu_b, cpu_outs;
  for (size_t i = 0; i < c.n.size(); ++i) {
    w.push_back(random_tensor({c.n[i], c.k}, c.dtype, gpu, seed + 2 + i, 0.05f));
    b.push_back(c.bias ? random_tensor({c.n[i]}, c.dtype, gpu, seed + 10 + i) : Tensor());
    cpu_w.push_back(on_cpu(w[i]));
    cpu_b.push_back(on_cpu(b[i]));
    cpu_outs.push_back(Tensor::empty({c.m, c.n[i]}, c.dtype));
  }
  const InputNorm norm = c.norm ? InputNorm{norm_weight, 1e-5f} : InputNorm{};
  ops::project_many(cpu_outs, on_cpu(x), cpu_w, cpu_b, c.norm ? InputNorm{on_cpu(norm_weight), 1e-5f} : InputNorm{});
  expect_forms_agree(
      [&] {
        std::vector<Tensor> outs;
        for (size_t i = 0; i < c.n.size(); ++i) outs.push_back(nan_filled({c.m, c.n[i]}, c.dtype));
        ops::project_many(outs, x, w, b, norm);
        return outs;
      },
      cpu_outs, rounding_tolerance(c.dtype));
}

void check_project_add(int64_t m, int64_t n, int64_t k, bool bias) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << m << " n " << n << " k " << k << " bias " << bias);
  const Tensor x = random_tensor({m, k}, DType::BF16, gpu, seed), w = random_tensor({n, k}, DType::BF16, gpu, seed + 1, 0.05f);
  const Tensor residual = random_tensor({m, n}, DType::BF16, gpu, seed + 2, 2.0f);
  const Tensor b = bias ? random_tensor({n}, DType::BF16, gpu, seed + 3) : Tensor();
  Tensor expect = Tensor::empty({m, n}, DType::BF16);
  ops::project_add(expect, on_cpu(x), on_cpu(w), on_cpu(residual), on_cpu(b));
  expect_forms_agree(
      [&] {
        Tensor out = nan_filled({m, n}, DType::BF16);
        ops::project_add(out, x, w, residual, b);
        return std::vector<Tensor>{out};
      },
      {expect}, rounding_tolerance(DType::BF16));
}

void check_project_swiglu(int64_t m, int64_t f, int64_t k, bool norm, DType dtype = DType::BF16) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << m << " f " << f << " k " << k << " norm " << norm
                                    << " " << dtype_name(dtype));
  const Tensor x = random_tensor({m, k}, dtype, gpu, seed, 2.0f);
  const Tensor gate = random_tensor({f, k}, dtype, gpu, seed + 1, 0.1f), up = random_tensor({f, k}, dtype, gpu, seed + 2, 0.05f);
  const Tensor norm_weight = norm ? random_tensor({k}, DType::F32, gpu, seed + 3, 0.3f) : Tensor();
  Tensor expect = Tensor::empty({m, f}, dtype);
  ops::project_swiglu(expect, on_cpu(x), on_cpu(gate), on_cpu(up),
                      norm ? InputNorm{on_cpu(norm_weight), 1e-5f} : InputNorm{});
  expect_forms_agree(
      [&] {
        Tensor out = nan_filled({m, f}, dtype);
        ops::project_swiglu(out, x, gate, up, norm ? InputNorm{norm_weight, 1e-5f} : InputNorm{});
        return std::vector<Tensor>{out};
      },
      {expect}, rounding_tolerance(dtype), false);
}

}  // namespace

TEST(CudaGemvForms, GemmAlphaBetaManyShapes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4}) {
    for (DType out : {DType::BF16, DType::F32}) {
      check_gemm(m, 1, 8, out);         // one row, one load
      check_gemm(m, 1003, 72, out);     // short of a round
      check_gemm(m, 3, 2056, out);      // fewer rows than a block's warps, past one round
      check_gemm(m, 9001, 2056, out);   // more rows than the resident warps
      check_gemm(m, 1003, 16384, out);  // eight rounds a row; split in 4
    }
    check_gemm(m, 40009, 24, DType::BF16);  // every persistent warp walks several rows
  }
}

TEST(CudaGemvForms, ProjectManyStackedBiasesAndNorms) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4}) {
    check_project_many({m, 2048, {2048, 512, 512}});                 // 1B q, k, v
    check_project_many({m, 2048, {2048, 512, 512}, false, true});   // with the norm prologue
    check_project_many({m, 896, {896, 128, 128}, true, true, DType::BF16, DType::F32});  // Qwen2, f32 norm
    check_project_many({m, 8, {1, 2, 3}, true, true});
    check_project_many({m, 24, {20011, 7, 13013}, true});            // rows walked across the weights' ends
    check_project_many({m, 264, {30011, 5}, false, true, DType::F16, DType::F16});
    check_project_many({m, 4104, {33}, false, true});
    check_project_many({m, 8192, {4097}, false, m == 1});             // > 48 KB of shared memory at m = 1
  }
  check_project_many({1, 16384, {24}, false, true});                  // the prologue's 96 KB
}

TEST(CudaGemvForms, ProjectAddResidualEpilogue) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4}) {
    check_project_add(m, 2048, 8192, false);  // 1B down_proj
    check_project_add(m, 2048, 2048, true);   // o_proj, with a bias
    check_project_add(m, 40009, 16, false);
    check_project_add(m, 7, 8, true);
    check_project_add(m, 33, 4104, true);  // split in 2 (too short for 4); 2-row groups, the last half empty
  }
  for (int64_t m : {1, 4}) check_project_add(m, 4096, 14336, false);  // 8B down_proj
}

TEST(CudaGemvForms, ProjectSwigluWithAndWithoutTheNorm) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4}) {
    for (bool norm : {false, true}) {
      check_project_swiglu(m, 8192, 2048, norm);   // 1B gate/up: more columns than resident warps
      check_project_swiglu(m, 1, 8, norm);         // one column
      check_project_swiglu(m, 5, 2056, norm);      // fewer columns than a block's warps
      check_project_swiglu(m, 20011, 40, norm, DType::F16);
      check_project_swiglu(m, 301, 6144, norm);    // three rounds a row
    }
  }
}
