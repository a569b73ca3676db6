// The Cholesky factorisation and inverse go through LAPACK (OpenBLAS's dpotrf/dpotri) on the host:
// H is [in, in] (at most a few tens of thousands square), once per projection, so a device
// factorisation would save little next to the calibration forwards; it runs in double so that a
// nearly singular H (few calibration tokens, dead inputs) still factors after dampening. The
// column loop and the lazy block updates (cblas_sgemm) run in fp32 as the reference GPTQ does.
#include "quant/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "quant/gptq_grid.h"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
}

namespace tessera::quant {

namespace {

// The upper factor U of H^-1 = U^T U, row-major, for the symmetric positive definite h [n, n]
// (overwritten). A symmetric row-major matrix reads the same column-major, and LAPACK's lower
// column-major factor L (H = L L^T) is, read row-major, the upper factor of H = U^T U.
std::vector<float> inverse_upper_cholesky(std::vector<double>& h, int64_t n, const std::string& what, double damp) {
  const int dim = static_cast<int>(n);
  int info = 0;
  dpotrf_("L", &dim, h.data(), &dim, &info, 1);
  TS_CHECK(info == 0, "gptq {}: the dampened Hessian is not positive definite (column {}); use more calibration "
           "samples or a larger --gptq-damp than {}", what, info, damp);
  dpotri_("L", &dim, h.data(), &dim, &info, 1);  // H^-1 into the lower column-major triangle
  TS_CHECK(info == 0, "gptq {}: the Hessian is singular (column {})", what, info);
  for (int64_t i = 0; i < n; ++i)  // column-major lower (i >= j at i + j n) -> both triangles
    for (int64_t j = 0; j < i; ++j) h[j * n + i] = h[i + j * n];
  dpotrf_("L", &dim, h.data(), &dim, &info, 1);
  TS_CHECK(info == 0, "gptq {}: the inverse Hessian is not positive definite (column {}); use a larger --gptq-damp "
           "than {}", what, info, damp);
  std::vector<float> u(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) u[i * n + j] = static_cast<float>(h[i * n + j]);
  return u;
}

}  // namespace

PackedTensor gptq_quantize(const Tensor& weight, const Tensor& hessian, const QuantSpec& spec,
                           const GptqOptions& options, const std::string& what, GptqStats* stats) {
  TS_CHECK(weight.ndim() == 2 && weight.dtype() == DType::F32 && !weight.is_cuda(),
           "gptq {}: the weight must be an f32 host matrix, not {}", what, weight.str());
  const int64_t rows = weight.size(0), cols = weight.size(1);
  TS_CHECK(hessian.dtype() == DType::F32 && !hessian.is_cuda() && hessian.shape() == Shape({cols, cols}),
           "gptq {}: the Hessian must be f32 [{}, {}] on the host, not {}", what, cols, cols, hessian.str());
  TS_CHECK(options.block_size > 0, "gptq {}: the block size must be positive, not {}", what, options.block_size);
  TS_CHECK(options.damp > 0, "gptq {}: the dampening must be positive, not {}", what, options.damp);
  ColumnGrid grid(spec, rows, cols);  // checks the scheme and the shape

  const float* w_in = weight.data_as<float>();
  const float* h_in = hessian.data_as<float>();
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (options.act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h_in[a * cols + a] > h_in[b * cols + b]; });
  std::vector<int64_t> position(static_cast<size_t>(cols));  // original column -> processing order
  for (int64_t j = 0; j < cols; ++j) position[perm[j]] = j;

  // W and H in processing order; dead inputs (never nonzero) get H = 1 there and a zero column.
  std::vector<float> w(static_cast<size_t>(rows * cols));
  std::vector<double> h(static_cast<size_t>(cols * cols));
  double mean_diag = 0;
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) h[i * cols + j] = h_in[perm[i] * cols + perm[j]];
    mean_diag += h[i * cols + i];
  }
  mean_diag /= static_cast<double>(cols);
  for (int64_t j = 0; j < cols; ++j) {
    const bool dead = h[j * cols + j] == 0;
    if (dead) h[j * cols + j] = 1;
    for (int64_t r = 0; r < rows; ++r) w[r * cols + j] = dead ? 0.0f : w_in[r * cols + perm[j]];
  }
  for (int64_t j = 0; j < cols; ++j) h[j * cols + j] += options.damp * (mean_diag > 0 ? mean_diag : 1.0);
  const std::vector<float> u = inverse_upper_cholesky(h, cols, what, options.damp);
  h = {};

  // Each row's walk through a block depends only on that row (and U): rows go in parallel. A
  // group's parameters are chosen at its first column in processing order.
  const int64_t g = grid.group_size();
  std::vector<int64_t> first(static_cast<size_t>(grid.groups()), cols);
  for (int64_t c = 0; c < cols; ++c) first[c / g] = std::min(first[c / g], position[c]);
  double loss = 0;
  for (int64_t i1 = 0; i1 < cols; i1 += options.block_size) {
    const int64_t i2 = std::min(cols, i1 + options.block_size), count = i2 - i1;
    std::vector<float> err(static_cast<size_t>(rows * count));
#pragma omp parallel for reduction(+ : loss) if (rows * count * count > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      float* w_row = &w[r * cols];
      std::vector<float> group_values;
      for (int64_t j = i1; j < i2; ++j) {
        const int64_t col = perm[j], group = col / g;
        if (first[group] == j) {  // the group's current values in this row, in its own column order
          group_values.resize(static_cast<size_t>(g));
          for (int64_t k = 0; k < g; ++k) group_values[k] = w_row[position[group * g + k]];
          grid.choose(r, group, group_values.data());
        }
        const float* u_row = &u[j * cols];
        const float q = grid.round(r, col, w_row[j]);
        const float e = (w_row[j] - q) / u_row[j];
        loss += 0.5 * double(e) * double(e);
        err[r * count + (j - i1)] = e;
        for (int64_t k = j + 1; k < i2; ++k) w_row[k] -= e * u_row[k];
      }
    }
    if (i2 < cols)  // w[:, i2:] -= err @ U[i1:i2, i2:]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols - i2),
                  static_cast<int>(count), -1.0f, err.data(), static_cast<int>(count), &u[i1 * cols + i2],
                  static_cast<int>(cols), 1.0f, &w[i2], static_cast<int>(cols));
  }
  if (stats) stats->loss = loss;
  return grid.pack();
}

void accumulate_hessian(const Tensor& hessian, const Tensor& x, float alpha) {
  const int64_t in = hessian.ndim() == 2 ? hessian.size(0) : 0;
  TS_CHECK(hessian.dtype() == DType::F32 && hessian.shape() == Shape({in, in}) && in > 0 && x.numel() % in == 0,
           "gptq: a Hessian f32 [in, in] for inputs {} of in features, not {}", x.str(), hessian.str());
  const Tensor rows = x.view({x.numel() / in, in});
  ops::gemm(hessian, rows, rows, /*trans_a=*/true, /*trans_b=*/false, alpha, 1.0f);
}

}  // namespace tessera::quant
