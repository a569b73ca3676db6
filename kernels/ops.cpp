// Argument checks shared by both backends, then dispatch on the tensors' device.
#include "kernels/ops.h"

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"

#if TESSERA_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#define TS_DISPATCH(device, call) \
  ((device).is_cuda() ? cuda::call : cpu::call)
#else
#define TS_DISPATCH(device, call) \
  ((device).is_cuda() ? ::tessera::fail("{}: this build has no CUDA backend", #call) : cpu::call)
#endif

namespace tessera::ops {

namespace {

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  TS_CHECK(a.device() == b.device(), "{}: tensors on different devices ({} and {})", op, a.str(), b.str());
}

void check_floating(const char* op, const Tensor& t) {
  TS_CHECK(is_floating(t.dtype()), "{}: expected a floating tensor, got {}", op, t.str());
}

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  TS_CHECK(a.dtype() == b.dtype() && a.numel() == b.numel(), "{}: {} and {} do not match", op, a.str(),
           b.str());
}

}  // namespace

void fill(const Tensor& t, float value) {
  check_floating("fill", t);
  TS_DISPATCH(t.device(), fill(t, value));
}

void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high) {
  check_floating("fill_uniform", t);
  TS_DISPATCH(t.device(), fill_uniform(t, seed, offset, low, high));
}

void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std) {
  check_floating("fill_normal", t);
  TS_DISPATCH(t.device(), fill_normal(t, seed, offset, mean, std));
}

void copy(const Tensor& dst, const Tensor& src) {
  TS_CHECK(dst.numel() == src.numel(), "copy: {} and {} differ in element count", dst.str(), src.str());
  if (dst.dtype() == src.dtype()) return copy_bytes(dst, src, /*async=*/dst.is_cuda() && src.is_cuda());
  TS_CHECK(is_floating(dst.dtype()) && is_floating(src.dtype()),
           "copy: cannot convert {} to {} (casts are between f32, bf16 and f16)", src.str(), dst.str());
  check_same_device("copy", dst, src);
  TS_DISPATCH(dst.device(), copy(dst, src));
}

Tensor cast(const Tensor& src, DType dtype) {
  Tensor out = Tensor::empty(src.shape(), dtype, src.device());
  copy(out, src);
  return out;
}

void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha, float beta) {
  check_floating("add", out);
  check_same("add", out, a);
  check_same("add", out, b);
  TS_DISPATCH(out.device(), add(out, a, b, alpha, beta));
}

void scale(const Tensor& out, const Tensor& in, float alpha) {
  check_floating("scale", out);
  check_same("scale", out, in);
  TS_DISPATCH(out.device(), scale(out, in, alpha));
}

void gemm(const Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
          float beta, const Tensor& bias) {
  check_same_device("gemm", c, a);
  check_same_device("gemm", c, b);
  TS_CHECK(a.ndim() >= 1 && b.ndim() >= 1 && c.ndim() >= 1, "gemm: scalar operand ({}, {}, {})", a.str(),
           b.str(), c.str());
  TS_CHECK(a.dtype() == b.dtype() && is_floating(a.dtype()), "gemm: A {} and B {} must share a floating dtype",
           a.str(), b.str());
  TS_CHECK(c.dtype() == DType::F32 || c.dtype() == a.dtype(), "gemm: C {} must be f32 or {}", c.str(),
           dtype_name(a.dtype()));
  const int64_t a_cols = a.size(-1), a_rows = a.numel() / std::max<int64_t>(a_cols, 1);
  const int64_t b_cols = b.size(-1), b_rows = b.numel() / std::max<int64_t>(b_cols, 1);
  GemmShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = trans_a ? a_cols : a_rows;
  s.k = trans_a ? a_rows : a_cols;
  s.n = trans_b ? b_rows : b_cols;
  s.lda = a_cols;
  s.ldb = b_cols;
  const int64_t k_of_b = trans_b ? b_cols : b_rows;
  TS_CHECK(k_of_b == s.k, "gemm: inner dimensions differ: A {}{} and B {}{}", a.str(), trans_a ? "^T" : "",
           b.str(), trans_b ? "^T" : "");
  TS_CHECK(c.numel() == s.m * s.n && c.size(-1) == s.n, "gemm: C {} should hold [{}, {}]", c.str(), s.m, s.n);
  if (bias.defined()) {
    check_same_device("gemm", c, bias);
    TS_CHECK(bias.numel() == s.n && bias.dtype() == c.dtype(), "gemm: bias {} should be {}[{}]", bias.str(),
             dtype_name(c.dtype()), s.n);
  }
  if (s.m == 0 || s.n == 0) return;
  TS_DISPATCH(c.device(), gemm(c, a, b, s, alpha, beta, bias));
}

}  // namespace tessera::ops

namespace tessera::ops {

void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
           const Tensor& low) {
  for (const Tensor* t : {&param, &grad, &m, &v}) {
    check_same_device("adamw", param, *t);
    TS_CHECK(t->dtype() == DType::F32 && t->numel() == param.numel(), "adamw: {} must be f32 with {} elements",
             t->str(), param.numel());
  }
  if (low.defined()) {
    check_same_device("adamw", param, low);
    check_floating("adamw", low);
    TS_CHECK(low.numel() == param.numel(), "adamw: working copy {} must have {} elements", low.str(), param.numel());
  }
  TS_CHECK(s.step >= 1, "adamw: step counts from 1, got {}", s.step);
  TS_DISPATCH(param.device(), adamw(param, grad, m, v, s, low));
}

void sum_squares(const Tensor& out, const Tensor& x) {
  check_same_device("sum_squares", out, x);
  check_floating("sum_squares", x);
  TS_CHECK(out.dtype() == DType::F32 && out.numel() == 1, "sum_squares: out {} must be f32[1]", out.str());
  TS_DISPATCH(x.device(), sum_squares(out, x));
}

}  // namespace tessera::ops
