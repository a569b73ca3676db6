// Argument checks shared by both backends, then dispatch on the tensors' device.
#include "kernels/ops.h"

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_ops.h"

#if TESSERA_WITH_CUDA
#include "kernels/cuda/attention.h"
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

void check_shape(const char* op, const char* name, const Tensor& t, const Shape& want) {
  TS_CHECK(t.defined() && t.shape() == want, "{}: {} is {}, expected {}", op, name, t.defined() ? t.str() : "undefined",
           shape_str(want));
}

// The shapes of q, k, v (and segment_ids), which every other attention tensor must follow.
AttentionShape attention_shape(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& segment_ids) {
  TS_CHECK(q.defined() && q.ndim() == 4, "{}: q must be [B, S, Hq, D], got {}", op, q.defined() ? q.str() : "undefined");
  AttentionShape s;
  s.b = q.size(0);
  s.s = q.size(1);
  s.hq = q.size(2);
  s.d = q.size(3);
  TS_CHECK(k.defined() && k.ndim() == 4, "{}: k must be [B, S, Hkv, D], got {}", op, k.defined() ? k.str() : "undefined");
  s.hkv = k.size(2);
  check_shape(op, "k", k, {s.b, s.s, s.hkv, s.d});
  check_shape(op, "v", v, {s.b, s.s, s.hkv, s.d});
  TS_CHECK(s.hkv > 0 && s.hq % s.hkv == 0, "{}: {} query heads are not a multiple of {} kv heads", op, s.hq, s.hkv);
  TS_CHECK(s.d > 0, "{}: head dim must be positive ({})", op, q.str());
  check_floating(op, q);
  TS_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), "{}: q {}, k {} and v {} must share a dtype", op,
           q.str(), k.str(), v.str());
  check_same_device(op, q, k);
  check_same_device(op, q, v);
  if (segment_ids.defined()) {
    check_shape(op, "segment_ids", segment_ids, {s.b, s.s});
    TS_CHECK(segment_ids.dtype() == DType::I32, "{}: segment_ids must be i32, got {}", op, segment_ids.str());
    check_same_device(op, q, segment_ids);
  }
  return s;
}

void check_like(const char* op, const char* name, const Tensor& t, const Tensor& like) {
  check_shape(op, name, t, like.shape());
  TS_CHECK(t.dtype() == like.dtype(), "{}: {} {} must have the dtype of {}", op, name, t.str(), like.str());
  check_same_device(op, t, like);
}

void check_lse(const char* op, const Tensor& lse, const AttentionShape& s, const Tensor& q) {
  check_shape(op, "lse", lse, {s.b, s.hq, s.s});
  TS_CHECK(lse.dtype() == DType::F32, "{}: lse must be f32, got {}", op, lse.str());
  check_same_device(op, lse, q);
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

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       float softmax_scale, const Tensor& segment_ids) {
  const char* op = "attention_forward";
  const AttentionShape s = attention_shape(op, q, k, v, segment_ids);
  check_like(op, "out", out, q);
  check_lse(op, lse, s, q);
  if (s.b * s.s * s.hq == 0) return;
  TS_DISPATCH(q.device(), attention_forward(out, lse, q, k, v, softmax_scale, segment_ids, s));
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, float softmax_scale,
                        const Tensor& segment_ids) {
  const char* op = "attention_backward";
  const AttentionShape s = attention_shape(op, q, k, v, segment_ids);
  check_like(op, "dq", dq, q);
  check_like(op, "dk", dk, k);
  check_like(op, "dv", dv, v);
  check_like(op, "dout", dout, q);
  check_like(op, "out", out, q);
  check_lse(op, lse, s, q);
  if (s.b * s.s * s.hq == 0) return;
  TS_DISPATCH(q.device(), attention_backward(dq, dk, dv, dout, q, k, v, out, lse, softmax_scale, segment_ids, s));
}

}  // namespace tessera::ops
