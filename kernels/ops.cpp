// Argument checks shared by both backends, then dispatch on the tensors' device.
#include "kernels/ops.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/stacked_ops.h"

#if TESSERA_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/small_m.h"
#include "kernels/cuda/stacked_rows.h"
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

void check_indices(const char* op, const Tensor& t, int64_t count) {
  TS_CHECK(t.dtype() == DType::I32 || t.dtype() == DType::I64, "{}: indices {} must be int32 or int64", op,
           t.str());
  TS_CHECK(t.numel() == count, "{}: indices {} should hold {} elements", op, t.str(), count);
}

void check_f32(const char* op, const Tensor& t, int64_t count) {
  TS_CHECK(t.dtype() == DType::F32 && t.numel() == count, "{}: {} should be f32 with {} elements", op, t.str(),
           count);
}

// A [rows, cols] parameter (weight or its gradient).
void check_matrix(const char* op, const Tensor& t, int64_t rows, int64_t cols) {
  TS_CHECK(t.ndim() == 2 && t.size(0) == rows && t.size(1) == cols, "{}: {} should be [{}, {}]", op, t.str(), rows,
           cols);
}

// An activation of `rows` rows of `cols` features (any leading shape).
void check_rows(const char* op, const Tensor& t, int64_t rows, int64_t cols) {
  check_floating(op, t);
  TS_CHECK(t.ndim() >= 1 && t.size(-1) == cols && t.numel() == rows * cols, "{}: {} should hold {} rows of {}", op,
           t.str(), rows, cols);
}

// The rows RMSNorm normalises: x is floating, its last dimension the features.
int64_t rmsnorm_rows(const char* op, const Tensor& x) {
  check_floating(op, x);
  TS_CHECK(x.ndim() >= 1 && x.size(-1) > 0, "{}: x {} has no features", op, x.str());
  return x.numel() / x.size(-1);
}

void check_rmsnorm_weight(const char* op, const Tensor& weight, const Tensor& x) {
  check_same_device(op, weight, x);
  TS_CHECK(weight.numel() == x.size(-1) && (weight.dtype() == x.dtype() || weight.dtype() == DType::F32),
           "{}: weight {} should hold {} elements of {} or f32", op, weight.str(), x.size(-1), dtype_name(x.dtype()));
}

void check_rope(const char* op, const Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  check_floating(op, x);
  check_same_device(op, x, positions);
  check_same_device(op, x, inv_freq);
  TS_CHECK(x.ndim() == 3 && x.size(2) % 2 == 0, "{}: {} should be [tokens, heads, even head_dim]", op, x.str());
  TS_CHECK(positions.dtype() == DType::I32 && positions.numel() == x.size(0), "{}: positions {} should be int32[{}]",
           op, positions.str(), x.size(0));
  check_f32(op, inv_freq, x.size(2) / 2);
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

// The sizes of C = alpha op(A) op(B) + beta C, checked: B is given by its shape (and its name
// for messages), so a packed B is checked as a plain one.
GemmShape gemm_shape(const char* op, const Tensor& c, const Tensor& a, const Shape& b_shape, const std::string& b_str,
                     bool trans_a, bool trans_b, const Tensor& bias) {
  TS_CHECK(c.dtype() == DType::F32 || c.dtype() == a.dtype(), "{}: C {} must be f32 or {}", op, c.str(),
           dtype_name(a.dtype()));
  const int64_t a_cols = a.size(-1), a_rows = a.numel() / std::max<int64_t>(a_cols, 1);
  const int64_t b_cols = b_shape.back(), b_rows = shape_numel(b_shape) / std::max<int64_t>(b_cols, 1);
  GemmShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = trans_a ? a_cols : a_rows;
  s.k = trans_a ? a_rows : a_cols;
  s.n = trans_b ? b_rows : b_cols;
  s.lda = a_cols;
  s.ldb = b_cols;
  const int64_t k_of_b = trans_b ? b_cols : b_rows;
  TS_CHECK(k_of_b == s.k, "{}: inner dimensions differ: A {}{} and B {}{}", op, a.str(), trans_a ? "^T" : "", b_str,
           trans_b ? "^T" : "");
  TS_CHECK(c.numel() == s.m * s.n && c.size(-1) == s.n, "{}: C {} should hold [{}, {}]", op, c.str(), s.m, s.n);
  if (bias.defined()) {
    check_same_device(op, c, bias);
    TS_CHECK(bias.numel() == s.n && bias.dtype() == c.dtype(), "{}: bias {} should be {}[{}]", op, bias.str(),
             dtype_name(c.dtype()), s.n);
  }
  return s;
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
  const GemmShape s = gemm_shape("gemm", c, a, b.shape(), b.str(), trans_a, trans_b, bias);
  if (s.m == 0 || s.n == 0) return;
  TS_DISPATCH(c.device(), gemm(c, a, b, s, alpha, beta, bias));
}

void embedding_forward(const Tensor& out, const Tensor& weight, const Tensor& ids) {
  check_floating("embedding_forward", weight);
  TS_CHECK(weight.ndim() == 2, "embedding_forward: weight {} should be [vocab, hidden]", weight.str());
  check_indices("embedding_forward", ids, ids.numel());
  check_rows("embedding_forward", out, ids.numel(), weight.size(1));
  check_same_device("embedding_forward", out, weight);
  check_same_device("embedding_forward", out, ids);
  TS_CHECK(out.dtype() == weight.dtype(), "embedding_forward: out {} should have weight's dtype {}", out.str(),
           dtype_name(weight.dtype()));
  if (out.numel() == 0) return;
  TS_DISPATCH(out.device(), embedding_forward(out, weight, ids));
}

void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids) {
  TS_CHECK(dweight.dtype() == DType::F32 && dweight.ndim() == 2,
           "embedding_backward: dweight {} should be f32[vocab, hidden]", dweight.str());
  check_indices("embedding_backward", ids, ids.numel());
  check_rows("embedding_backward", dout, ids.numel(), dweight.size(1));
  check_same_device("embedding_backward", dweight, dout);
  check_same_device("embedding_backward", dweight, ids);
  if (dout.numel() == 0) return;
  TS_DISPATCH(dweight.device(), embedding_backward(dweight, dout, ids));
}

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t rows = rmsnorm_rows("rmsnorm_forward", x);
  check_same("rmsnorm_forward", out, x);
  check_same_device("rmsnorm_forward", rstd, x);
  check_f32("rmsnorm_forward", rstd, rows);
  check_rmsnorm_weight("rmsnorm_forward", weight, x);
  TS_CHECK(eps >= 0, "rmsnorm_forward: eps {} is negative", eps);
  if (rows == 0) return;
  TS_DISPATCH(x.device(), rmsnorm_forward(out, rstd, x, weight, eps));
}

void add_rmsnorm_forward(const Tensor& sum, const Tensor& out, const Tensor& rstd, const Tensor& a, const Tensor& b,
                         const Tensor& weight, float eps) {
  const char* op = "add_rmsnorm_forward";
  const int64_t rows = rmsnorm_rows(op, a);
  check_same(op, b, a);
  check_same(op, sum, a);
  check_same(op, out, a);
  check_same_device(op, rstd, a);
  check_f32(op, rstd, rows);
  check_rmsnorm_weight(op, weight, a);
  TS_CHECK(eps >= 0, "{}: eps {} is negative", op, eps);
  if (rows == 0) return;
  TS_DISPATCH(a.device(), add_rmsnorm_forward(sum, out, rstd, a, b, weight, eps));
}

void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd) {
  const int64_t rows = rmsnorm_rows("rmsnorm_backward", x);
  check_same("rmsnorm_backward", dx, x);
  check_same("rmsnorm_backward", dout, x);
  check_same_device("rmsnorm_backward", rstd, x);
  check_f32("rmsnorm_backward", rstd, rows);
  if (dweight.defined()) {
    check_same_device("rmsnorm_backward", dweight, x);
    check_f32("rmsnorm_backward", dweight, x.size(-1));
  }
  check_rmsnorm_weight("rmsnorm_backward", weight, x);
  if (rows == 0) return;
  TS_DISPATCH(x.device(), rmsnorm_backward(dx, dweight, dout, x, weight, rstd));
}

void rope_forward(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling) {
  check_rope("rope_forward", x, positions, inv_freq);
  if (x.numel() == 0) return;
  TS_DISPATCH(x.device(), rope(x, Tensor(), positions, inv_freq, attention_scaling, 1.0f));
}

void rope_forward_qk(const Tensor& q, const Tensor& k, const Tensor& positions, const Tensor& inv_freq,
                     float attention_scaling) {
  check_rope("rope_forward_qk", q, positions, inv_freq);
  check_rope("rope_forward_qk", k, positions, inv_freq);
  TS_CHECK(k.dtype() == q.dtype() && k.size(2) == q.size(2), "rope_forward_qk: q {} and k {} differ in dtype or head_dim",
           q.str(), k.str());
  if (q.numel() == 0) return;
  TS_DISPATCH(q.device(), rope(q, k, positions, inv_freq, attention_scaling, 1.0f));
}

void rope_backward(const Tensor& dx, const Tensor& positions, const Tensor& inv_freq, float attention_scaling) {
  check_rope("rope_backward", dx, positions, inv_freq);
  if (dx.numel() == 0) return;
  TS_DISPATCH(dx.device(), rope(dx, Tensor(), positions, inv_freq, attention_scaling, -1.0f));
}

void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  check_floating("swiglu_forward", gate);
  check_same("swiglu_forward", out, gate);
  check_same("swiglu_forward", up, gate);
  if (gate.numel() == 0) return;
  TS_DISPATCH(gate.device(), swiglu_forward(out, gate, up));
}

void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up) {
  check_floating("swiglu_backward", gate);
  for (const Tensor* t : {&dgate, &dup, &dout, &up}) check_same("swiglu_backward", *t, gate);
  if (gate.numel() == 0) return;
  TS_DISPATCH(gate.device(), swiglu_backward(dgate, dup, dout, gate, up));
}

void cross_entropy_rows(const Tensor& loss, const Tensor& logits, const Tensor& labels, float grad_scale,
                        const Tensor& grad) {
  check_floating("cross_entropy_rows", logits);
  TS_CHECK(logits.ndim() >= 1 && logits.size(-1) > 0, "cross_entropy_rows: logits {} have no classes", logits.str());
  const int64_t rows = logits.numel() / logits.size(-1);
  check_f32("cross_entropy_rows", loss, rows);
  check_indices("cross_entropy_rows", labels, rows);
  check_same_device("cross_entropy_rows", loss, logits);
  check_same_device("cross_entropy_rows", labels, logits);
  if (grad.defined()) {
    check_floating("cross_entropy_rows", grad);
    check_same_device("cross_entropy_rows", grad, logits);
    TS_CHECK(grad.shape() == logits.shape(), "cross_entropy_rows: grad {} should have the shape of logits {}",
             grad.str(), logits.str());
  }
  if (rows == 0) return;
  TS_DISPATCH(logits.device(), cross_entropy_rows(loss, logits, labels, grad_scale, grad));
}

namespace {

// The logits [rows, vocab] and a token pick per row (index int32 [rows], logprob f32 [rows]) on
// one device, as argmax_rows and sample_rows take them; returns the rows.
int64_t check_row_picks(const char* op, const Tensor& index, const Tensor& logprob, const Tensor& logits) {
  check_floating(op, logits);
  TS_CHECK(logits.ndim() == 2 && logits.size(1) > 0, "{}: logits must be [rows, vocab], got {}", op, logits.str());
  const int64_t rows = logits.size(0);
  TS_CHECK(index.defined() && index.dtype() == DType::I32 && index.numel() == rows,
           "{}: index must be int32 [{}], got {}", op, rows, index.defined() ? index.str() : "an undefined tensor");
  check_f32(op, logprob, rows);
  check_same_device(op, index, logits);
  check_same_device(op, logprob, logits);
  return rows;
}

}  // namespace

void argmax_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits) {
  if (check_row_picks("argmax_rows", index, logprob, logits) == 0) return;
  TS_DISPATCH(logits.device(), argmax_rows(index, logprob, logits));
}

void sample_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits, const Tensor& params) {
  const char* op = "sample_rows";
  const int64_t rows = check_row_picks(op, index, logprob, logits);
  TS_CHECK(params.defined() && params.dtype() == DType::I32 && params.numel() == 8 * rows,
           "{}: params must be int32 [{}, 8] (a SamplingRow per row), got {}", op, rows,
           params.defined() ? params.str() : "an undefined tensor");
  // Weights are at most 2^40 each (kernels/sampling_row.h): their sum over 2^23 tokens fits 64 bits.
  TS_CHECK(logits.size(1) <= (int64_t(1) << 23), "{}: a vocabulary of {} is beyond 2^23 tokens", op, logits.size(1));
  check_same_device(op, params, logits);
  if (rows == 0) return;
  // Every row's argmax first; the backends' sample_rows then overwrite the rows that draw.
  TS_DISPATCH(logits.device(), argmax_rows(index, logprob, logits));
  TS_DISPATCH(logits.device(), sample_rows(index, logprob, logits, params));
}

// Per chunk: f32 logits by gemm, turned by cross_entropy_rows into their gradient in the weight's
// dtype (gemm takes A and B of one dtype) for dhidden = grad @ weight and dweight += grad^T @ hidden. Per-token losses go to an [N] buffer, summed once at the end.
void linear_cross_entropy(const Tensor& loss_sum, const Tensor& dhidden, const Tensor& dweight,
                          const Tensor& hidden, const Tensor& weight, const Tensor& labels, float grad_scale,
                          int64_t chunk_tokens) {
  const char* op = "linear_cross_entropy";
  check_floating(op, weight);
  TS_CHECK(weight.ndim() == 2, "{}: weight {} should be [vocab, hidden]", op, weight.str());
  const int64_t vocab = weight.size(0), width = weight.size(1);
  TS_CHECK(hidden.ndim() >= 1 && hidden.size(-1) == width, "{}: hidden {} should have {} features", op,
           hidden.str(), width);
  const int64_t tokens = hidden.numel() / std::max<int64_t>(width, 1);
  check_same_device(op, hidden, weight);
  TS_CHECK(hidden.dtype() == weight.dtype(), "{}: hidden {} and weight {} should share a dtype", op, hidden.str(),
           weight.str());
  check_indices(op, labels, tokens);
  check_same_device(op, labels, hidden);
  check_same_device(op, loss_sum, hidden);
  check_f32(op, loss_sum, 1);
  if (dhidden.defined()) {
    check_rows(op, dhidden, tokens, width);
    check_same_device(op, dhidden, hidden);
    TS_CHECK(dhidden.dtype() == DType::F32 || dhidden.dtype() == weight.dtype(), "{}: dhidden {} should be f32 or {}",
             op, dhidden.str(), dtype_name(weight.dtype()));
  }
  if (dweight.defined()) {
    check_same_device(op, dweight, hidden);
    check_matrix(op, dweight, vocab, width);
    TS_CHECK(dweight.dtype() == DType::F32, "{}: dweight {} should be f32", op, dweight.str());
  }
  TS_CHECK(chunk_tokens > 0, "{}: chunk_tokens {} should be positive", op, chunk_tokens);
  if (tokens == 0) return fill(loss_sum, 0.0f);

  const Device device = hidden.device();
  const bool grads = dhidden.defined() || dweight.defined();
  const int64_t chunk = std::min(chunk_tokens, tokens);
  const Tensor rows = hidden.view({tokens, width}), targets = labels.view({tokens});
  const Tensor losses = Tensor::empty({tokens}, DType::F32, device);
  const Tensor logits = Tensor::empty({chunk, vocab}, DType::F32, device);
  const bool round_grad = grads && weight.dtype() != DType::F32;
  const Tensor rounded = round_grad ? Tensor::empty({chunk, vocab}, weight.dtype(), device) : Tensor();
  for (int64_t start = 0; start < tokens; start += chunk) {
    const int64_t len = std::min(chunk, tokens - start);
    const Tensor h = rows.narrow(start, len), z = logits.narrow(0, len);
    gemm(z, h, weight, false, true);
    const Tensor g = !grads ? Tensor() : round_grad ? rounded.narrow(0, len) : z;
    cross_entropy_rows(losses.narrow(start, len), z, targets.narrow(start, len), grad_scale, g);
    if (!grads) continue;
    if (dhidden.defined()) gemm(dhidden.view({tokens, width}).narrow(start, len), g, weight);
    if (dweight.defined()) gemm(dweight, g, h, true, false, 1.0f, 1.0f);
  }
  column_sum(loss_sum, losses.view({tokens, 1}));
}

namespace {

void check_adamw(const char* op, const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                 const AdamWStep& s, const Tensor& low) {
  for (const Tensor* t : {&param, &grad, &m, &v}) {
    check_same_device(op, param, *t);
    TS_CHECK(t->dtype() == DType::F32 && t->numel() == param.numel(), "{}: {} must be f32 with {} elements", op,
             t->str(), param.numel());
  }
  if (low.defined()) {
    check_same_device(op, param, low);
    check_floating(op, low);
    TS_CHECK(low.numel() == param.numel(), "{}: working copy {} must have {} elements", op, low.str(), param.numel());
  }
  TS_CHECK(s.step >= 1, "{}: step counts from 1, got {}", op, s.step);
}

}  // namespace

void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
           const Tensor& low) {
  check_adamw("adamw", param, grad, m, v, s, low);
  TS_DISPATCH(param.device(), adamw(param, grad, m, v, s, low));
}

void adamw_spans(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
                 const Tensor& low, const std::vector<AdamWSpan>& spans) {
  check_adamw("adamw_spans", param, grad, m, v, s, low);
  int64_t at = 0;
  for (const AdamWSpan& span : spans) {
    TS_CHECK(span.begin == at && span.end >= span.begin,
             "adamw_spans: spans must tile the buffer in order; [{}, {}) follows element {}", span.begin, span.end, at);
    at = span.end;
  }
  TS_CHECK(at <= param.numel(), "adamw_spans: the spans end at element {}, past the buffer's {}", at, param.numel());
  TS_DISPATCH(param.device(), adamw_spans(param, grad, m, v, s, low, spans));
}

void sum_squares(const Tensor& out, const Tensor& x) {
  check_same_device("sum_squares", out, x);
  check_floating("sum_squares", x);
  TS_CHECK(out.dtype() == DType::F32 && out.numel() == 1, "sum_squares: out {} must be f32[1]", out.str());
  TS_DISPATCH(x.device(), sum_squares(out, x));
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

void document_bounds(const Tensor& bounds, const Tensor& segment_ids) {
  const char* op = "document_bounds";
  TS_CHECK(segment_ids.defined() && segment_ids.ndim() == 2 && segment_ids.dtype() == DType::I32,
           "{}: segment_ids must be i32 [B, S], got {}", op, segment_ids.defined() ? segment_ids.str() : "undefined");
  TS_CHECK(segment_ids.size(1) <= INT32_MAX, "{}: {} rows per sequence do not fit i32 bounds", op, segment_ids.size(1));
  check_shape(op, "bounds", bounds, {2, segment_ids.size(0), segment_ids.size(1)});
  TS_CHECK(bounds.dtype() == DType::I32, "{}: bounds must be i32, got {}", op, bounds.str());
  check_same_device(op, bounds, segment_ids);
  if (segment_ids.numel() == 0) return;
  TS_DISPATCH(segment_ids.device(), document_bounds(bounds, segment_ids));
}

namespace {

const char* defined_str(const Tensor& t) { return t.defined() ? "" : "undefined "; }

// The shapes of the paged cache, which every other paged-KV tensor must follow.
PagedShape paged_cache_shape(const char* op, const Tensor& k_cache, const Tensor& v_cache) {
  TS_CHECK(k_cache.defined() && k_cache.ndim() == 4, "{}: k_cache must be [num_blocks, block_size, Hkv, D], got {}{}",
           op, defined_str(k_cache), k_cache.defined() ? k_cache.str() : "tensor");
  PagedShape s;
  s.blocks = k_cache.size(0);
  s.block_size = k_cache.size(1);
  s.hkv = k_cache.size(2);
  s.d = k_cache.size(3);
  check_shape(op, "v_cache", v_cache, k_cache.shape());
  check_floating(op, k_cache);
  TS_CHECK(v_cache.dtype() == k_cache.dtype(), "{}: k_cache {} and v_cache {} must share a dtype", op, k_cache.str(),
           v_cache.str());
  check_same_device(op, k_cache, v_cache);
  TS_CHECK(s.block_size > 0 && s.hkv > 0 && s.d > 0, "{}: k_cache {} has an empty dimension", op, k_cache.str());
  return s;
}

// An int32 tensor of the given shape on the cache's device (slots, block tables, query indices).
void check_i32(const char* op, const char* name, const Tensor& t, const Shape& want, const Tensor& cache) {
  check_shape(op, name, t, want);
  TS_CHECK(t.dtype() == DType::I32, "{}: {} must be int32, got {}", op, name, t.str());
  check_same_device(op, t, cache);
}

// [tokens, heads, d] rows of the cache's dtype and device (new keys and values, queries, output).
void check_token_rows(const char* op, const char* name, const Tensor& t, const Tensor& cache) {
  TS_CHECK(t.dtype() == cache.dtype(), "{}: {} {} must have the dtype of the cache {}", op, name, t.str(),
           cache.str());
  check_same_device(op, t, cache);
}

// The cache's shapes with the tokens and query heads of q [T, Hq, D], checked.
PagedShape paged_query_shape(const char* op, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache) {
  PagedShape s = paged_cache_shape(op, k_cache, v_cache);
  TS_CHECK(q.defined() && q.ndim() == 3, "{}: q must be [T, Hq, D], got {}{}", op, defined_str(q),
           q.defined() ? q.str() : "tensor");
  s.tokens = q.size(0);
  s.hq = q.size(1);
  check_shape(op, "q", q, {s.tokens, s.hq, s.d});
  check_token_rows(op, "q", q, k_cache);
  return s;
}

// paged_attention's shape, every input checked.
PagedShape paged_attention_shape(const char* op, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                 const Tensor& block_tables, const Tensor& query_seq, const Tensor& query_pos,
                                 int64_t window, float scale, const Tensor& out) {
  PagedShape s = paged_query_shape(op, q, k_cache, v_cache);
  TS_CHECK(s.hq % s.hkv == 0, "{}: {} query heads are not a multiple of {} kv heads", op, s.hq, s.hkv);
  check_shape(op, "out", out, q.shape());
  check_token_rows(op, "out", out, k_cache);
  TS_CHECK(block_tables.defined() && block_tables.ndim() == 2, "{}: block_tables must be [S, max_blocks], got {}{}",
           op, defined_str(block_tables), block_tables.defined() ? block_tables.str() : "tensor");
  s.seqs = block_tables.size(0);
  s.max_blocks = block_tables.size(1);
  check_i32(op, "block_tables", block_tables, {s.seqs, s.max_blocks}, k_cache);
  check_i32(op, "query_seq", query_seq, {s.tokens}, k_cache);
  check_i32(op, "query_pos", query_pos, {s.tokens}, k_cache);
  TS_CHECK(window >= 0, "{}: window must be >= 0 (0: no sliding window), got {}", op, window);
  TS_CHECK(std::isfinite(scale), "{}: scale must be finite, got {}", op, scale);
  return s;
}

// rope_kv_write's inputs besides q, k, v and the cache; rows: q's, or the stacked rows holding it
// ([T, heads, D] of the cache's dtype, checked).
void check_rope_inputs(const char* op, const PagedShape& s, const Tensor& rows, const Tensor& positions,
                       const Tensor& inv_freq, const Tensor& q_norm, const Tensor& k_norm, const Tensor& slots,
                       const Tensor& k_cache) {
  check_rope(op, rows, positions, inv_freq);
  check_i32(op, "slots", slots, {s.tokens}, k_cache);
  TS_CHECK(q_norm.defined() == k_norm.defined(), "{}: q_norm and k_norm go together (Qwen3), got {} and {}", op,
           defined_str(q_norm), defined_str(k_norm));
  if (q_norm.defined()) {
    check_rmsnorm_weight(op, q_norm, rows);
    check_rmsnorm_weight(op, k_norm, rows);
    TS_CHECK(q_norm.dtype() == k_norm.dtype(), "{}: q_norm {} and k_norm {} must share a dtype", op, q_norm.str(),
             k_norm.str());
  }
}

// rope_kv_write's inputs besides q and the cache (checked by paged_query_shape into s).
void check_rope_kv_inputs(const char* op, const PagedShape& s, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& positions, const Tensor& inv_freq, const Tensor& q_norm, const Tensor& k_norm,
                          const Tensor& slots, const Tensor& k_cache) {
  check_shape(op, "k", k, {s.tokens, s.hkv, s.d});
  check_shape(op, "v", v, {s.tokens, s.hkv, s.d});
  check_token_rows(op, "k", k, k_cache);
  check_token_rows(op, "v", v, k_cache);
  check_rope_inputs(op, s, q, positions, inv_freq, q_norm, k_norm, slots, k_cache);
}

// Columns [first, first + count) of the CPU tensor x [T, N] (its rows' heads [T, H, D] seen as
// [T, H * D]), as a new tensor [T, count / D, D].
Tensor cpu_column_block(const Tensor& x, int64_t first, int64_t count, int64_t d) {
  const int64_t rows = x.size(0), n = x.numel() / rows;
  const size_t bytes = dtype_size(x.dtype());
  Tensor block = Tensor::empty({rows, count / d, d}, x.dtype(), x.device());
  const char* from = static_cast<const char*>(x.data());
  char* to = static_cast<char*>(block.data());
  for (int64_t t = 0; t < rows; ++t) std::memcpy(to + t * count * bytes, from + (t * n + first) * bytes, count * bytes);
  return block;
}

}  // namespace

void paged_kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache, Tensor& v_cache) {
  const char* op = "paged_kv_write";
  PagedShape s = paged_cache_shape(op, k_cache, v_cache);
  TS_CHECK(k.defined() && k.ndim() == 3, "{}: k must be [T, Hkv, D], got {}{}", op, defined_str(k),
           k.defined() ? k.str() : "tensor");
  s.tokens = k.size(0);
  s.hq = s.hkv;
  check_shape(op, "k", k, {s.tokens, s.hkv, s.d});
  check_shape(op, "v", v, k.shape());
  check_token_rows(op, "k", k, k_cache);
  check_token_rows(op, "v", v, k_cache);
  check_i32(op, "slots", slots, {s.tokens}, k_cache);
  if (s.tokens == 0) return;
  TS_DISPATCH(k.device(), paged_kv_write(k, v, slots, k_cache, v_cache, s));
}

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
                     const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, Tensor& out) {
  const PagedShape s =
      paged_attention_shape("paged_attention", q, k_cache, v_cache, block_tables, query_seq, query_pos, window, scale, out);
  if (s.tokens == 0 || s.hq == 0) return;
  TS_DISPATCH(q.device(),
              paged_attention(q, k_cache, v_cache, block_tables, query_seq, query_pos, window, scale, out, s));
}

namespace {

// project_many's and project_many_packed's checks and shapes: counts of outputs and biases matching
// the weights, x floating, check_weight(i) of each weight, each output of x's dtype on its device,
// each product's shape (weight i of shape_of(i), named name_of(i)).
template <typename CheckWeight, typename ShapeOf, typename NameOf>
std::vector<GemmShape> many_shapes(const char* op, std::span<const Tensor> outs, const Tensor& x, size_t weights,
                                   std::span<const Tensor> biases, CheckWeight check_weight, ShapeOf shape_of,
                                   NameOf name_of) {
  TS_CHECK(weights > 0 && outs.size() == weights, "{}: {} outputs for {} weights", op, outs.size(), weights);
  TS_CHECK(biases.empty() || biases.size() == weights, "{}: {} biases for {} weights (none or one each)", op,
           biases.size(), weights);
  TS_CHECK(x.defined() && x.ndim() >= 1, "{}: x must be [T, K], got {}", op, x.defined() ? x.str() : "undefined");
  check_floating(op, x);
  std::vector<GemmShape> shapes;
  for (size_t i = 0; i < weights; ++i) {
    check_weight(i);
    const Tensor& out = outs[i];
    TS_CHECK(out.defined() && out.dtype() == x.dtype(), "{}: outs[{}] must be {}, got {}", op, i, dtype_name(x.dtype()),
             out.defined() ? out.str() : "undefined");
    check_same_device(op, out, x);
    shapes.push_back(gemm_shape(op, out, x, shape_of(i), name_of(i), false, true, biases.empty() ? Tensor() : biases[i]));
  }
  return shapes;
}

void check_input_norm(const char* op, const InputNorm& norm, const Tensor& x) {
  if (!norm.defined()) return;
  check_rmsnorm_weight(op, norm.weight, x);
  TS_CHECK(norm.eps >= 0, "{}: the norm's eps {} is negative", op, norm.eps);
}

}  // namespace

void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases, const InputNorm& norm) {
  const char* op = "project_many";
  const std::vector<GemmShape> shapes = many_shapes(
      op, outs, x, weights.size(), biases,
      [&](size_t i) {
        const Tensor& w = weights[i];
        TS_CHECK(w.defined() && w.ndim() == 2 && w.dtype() == x.dtype(),
                 "{}: weights[{}] must be a [N, K] matrix of {}, got {}", op, i, dtype_name(x.dtype()),
                 w.defined() ? w.str() : "undefined");
        check_same_device(op, w, x);
      },
      [&](size_t i) { return weights[i].shape(); }, [&](size_t i) { return weights[i].str(); });
  check_input_norm(op, norm, x);
  if (shapes[0].m == 0) return;
  TS_DISPATCH(x.device(), project_many(outs, x, weights, biases, shapes, norm));
}

void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up, const InputNorm& norm) {
  const char* op = "project_swiglu";
  TS_CHECK(x.defined() && x.ndim() >= 1, "{}: x must be [T, K], got {}", op, x.defined() ? x.str() : "undefined");
  check_floating(op, x);
  check_input_norm(op, norm, x);
  for (const Tensor* t : {&gate, &up, &out}) {
    TS_CHECK(t->defined() && t->dtype() == x.dtype(), "{}: {} must have x's dtype {}", op,
             t->defined() ? t->str() : "an undefined tensor", dtype_name(x.dtype()));
    check_same_device(op, *t, x);
  }
  TS_CHECK(gate.ndim() == 2 && gate.shape() == up.shape(), "{}: gate {} and up {} must be [F, K] alike", op, gate.str(),
           up.str());
  const GemmShape s = gemm_shape(op, out, x, gate.shape(), gate.str(), false, true, Tensor());
  if (s.m == 0 || s.n == 0) return;
  TS_DISPATCH(x.device(), project_swiglu(out, x, gate, up, s, norm));
}

void project_add(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& residual, const Tensor& bias) {
  const char* op = "project_add";
  TS_CHECK(x.defined() && x.ndim() >= 1, "{}: x must be [T, K], got {}", op, x.defined() ? x.str() : "undefined");
  check_floating(op, x);
  for (const Tensor* t : {&weight, &out, &residual}) {
    TS_CHECK(t->defined() && t->dtype() == x.dtype(), "{}: {} must have x's dtype {}", op,
             t->defined() ? t->str() : "an undefined tensor", dtype_name(x.dtype()));
    check_same_device(op, *t, x);
  }
  TS_CHECK(weight.ndim() == 2, "{}: weight {} must be a [N, K] matrix", op, weight.str());
  const GemmShape s = gemm_shape(op, out, x, weight.shape(), weight.str(), false, true, bias);
  TS_CHECK(residual.shape() == out.shape(), "{}: residual {} and out {} must be alike", op, residual.str(), out.str());
  if (s.m == 0 || s.n == 0) return;
  TS_DISPATCH(x.device(), project_add(out, x, weight, residual, bias, s));
}

bool folds_into_gemv(int64_t rows, const Tensor& weight, bool norm) {
  if (rows < 1 || rows > kFoldedGemvRows || !weight.defined()) return false;
#if TESSERA_WITH_CUDA
  if (weight.device().is_cuda()) return cuda::gemv_folds(rows, weight, norm);
#endif
  return weight.device().is_cpu();
}

void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions, const Tensor& inv_freq,
                   float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots,
                   Tensor& k_cache, Tensor& v_cache) {
  const char* op = "rope_kv_write";
  const PagedShape s = paged_query_shape(op, q, k_cache, v_cache);
  check_rope_kv_inputs(op, s, q, k, v, positions, inv_freq, q_norm, k_norm, slots, k_cache);
  if (s.tokens == 0) return;
  TS_DISPATCH(q.device(), rope_kv_write(q, k, v, positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots,
                                        k_cache, v_cache, s));
}

void rope_paged_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                          const Tensor& inv_freq, float attention_scaling, const Tensor& q_norm, const Tensor& k_norm,
                          float eps, const Tensor& slots, Tensor& k_cache, Tensor& v_cache, const Tensor& block_tables,
                          const Tensor& query_seq, int64_t window, float scale, Tensor& out) {
  const char* op = "rope_paged_attention";
  const PagedShape s =
      paged_attention_shape(op, q, k_cache, v_cache, block_tables, query_seq, positions, window, scale, out);
  check_rope_kv_inputs(op, s, q, k, v, positions, inv_freq, q_norm, k_norm, slots, k_cache);
  if (s.tokens == 0 || s.hq == 0) return;
  TS_DISPATCH(q.device(), rope_paged_attention(q, k, v, positions, inv_freq, attention_scaling, q_norm, k_norm, eps,
                                               slots, k_cache, v_cache, block_tables, query_seq, window, scale, out, s));
}

void rope_paged_attention_stacked(const Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                                  float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps,
                                  const Tensor& slots, Tensor& k_cache, Tensor& v_cache, const Tensor& block_tables,
                                  const Tensor& query_seq, int64_t window, float scale, Tensor& out) {
  const char* op = "rope_paged_attention_stacked";
  // out [T, Hq, D] names the query heads, the cache the kv heads.
  const PagedShape s =
      paged_attention_shape(op, out, k_cache, v_cache, block_tables, query_seq, positions, window, scale, out);
  check_shape(op, "qkv", qkv, {s.tokens, s.hq + 2 * s.hkv, s.d});
  check_token_rows(op, "qkv", qkv, k_cache);
  check_rope_inputs(op, s, qkv, positions, inv_freq, q_norm, k_norm, slots, k_cache);
  if (s.tokens == 0 || s.hq == 0) return;
#if TESSERA_WITH_CUDA
  if (qkv.is_cuda())
    return cuda::rope_paged_attention_rows(cuda::stacked_qkv_rows(qkv, s), positions, inv_freq, attention_scaling,
                                           q_norm, k_norm, eps, slots, k_cache, v_cache, block_tables, query_seq,
                                           window, scale, out, s);
#endif
  TS_CHECK(qkv.device().is_cpu(), "{}: this build has no CUDA backend", op);
  // The CPU's reference: the op on the three parts apart.
  const Tensor q = cpu_column_block(qkv, 0, s.hq * s.d, s.d), k = cpu_column_block(qkv, s.hq * s.d, s.hkv * s.d, s.d);
  const Tensor v = cpu_column_block(qkv, (s.hq + s.hkv) * s.d, s.hkv * s.d, s.d);
  cpu::rope_paged_attention(q, k, v, positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots, k_cache,
                            v_cache, block_tables, query_seq, window, scale, out, s);
}

void swiglu_stacked(const Tensor& out, const Tensor& gate_up) {
  const char* op = "swiglu_stacked";
  TS_CHECK(out.defined() && gate_up.defined() && out.ndim() == 2 && gate_up.shape() == Shape({out.size(0), 2 * out.size(1)}),
           "{}: gate_up must be [T, 2F] for out [T, F], got {} and {}", op, gate_up.defined() ? gate_up.str() : "undefined",
           out.defined() ? out.str() : "undefined");
  check_floating(op, gate_up);
  TS_CHECK(out.dtype() == gate_up.dtype(), "{}: out {} must have gate_up's dtype {}", op, out.str(), gate_up.str());
  check_same_device(op, out, gate_up);
  if (out.numel() == 0) return;
#if TESSERA_WITH_CUDA
  if (out.is_cuda()) return cuda::swiglu_rows(out, gate_up);
#endif
  TS_CHECK(out.device().is_cpu(), "{}: this build has no CUDA backend", op);
  const int64_t f = out.size(1);  // the CPU's reference: swiglu_forward of the halves apart
  cpu::swiglu_forward(out, cpu_column_block(gate_up, 0, f, f).view(out.shape()),
                      cpu_column_block(gate_up, f, f, f).view(out.shape()));
}

void lora_batched(const Tensor& y, const Tensor& x, const Tensor& a, const Tensor& b, const Tensor& ranks,
                  const Tensor& scales, const Tensor& index) {
  const char* op = "lora_batched";
  TS_CHECK(x.defined() && x.ndim() == 2, "{}: x must be [T, in], got {}", op, x.defined() ? x.str() : "undefined");
  check_floating(op, x);
  TS_CHECK(a.defined() && a.ndim() == 3, "{}: a must be [adapters, rank, in], got {}", op,
           a.defined() ? a.str() : "undefined");
  LoraBatchShape s{.rows = x.size(0), .in = x.size(1), .out = 0, .adapters = a.size(0), .rank = a.size(1)};
  TS_CHECK(y.defined() && y.ndim() == 2, "{}: y must be [T, out], got {}", op, y.defined() ? y.str() : "undefined");
  s.out = y.size(1);
  check_shape(op, "y", y, {s.rows, s.out});
  check_shape(op, "a", a, {s.adapters, s.rank, s.in});
  check_shape(op, "b", b, {s.adapters, s.out, s.rank});
  TS_CHECK(s.adapters > 0 && s.rank > 0, "{}: a {} holds no adapter", op, a.str());
  for (const Tensor* t : {&y, &a, &b}) {
    TS_CHECK(t->dtype() == x.dtype(), "{}: {} must have x's dtype {}", op, t->str(), dtype_name(x.dtype()));
    check_same_device(op, *t, x);
  }
  check_shape(op, "ranks", ranks, {s.adapters});
  check_shape(op, "scales", scales, {s.adapters});
  check_shape(op, "index", index, {s.rows});
  TS_CHECK(ranks.dtype() == DType::I32 && index.dtype() == DType::I32 && scales.dtype() == DType::F32,
           "{}: ranks and index must be int32 and scales f32, got {}, {} and {}", op, ranks.str(), index.str(),
           scales.str());
  for (const Tensor* t : {&ranks, &scales, &index}) check_same_device(op, *t, x);
  if (s.rows == 0 || s.out == 0 || s.in == 0) return;
  TS_DISPATCH(x.device(), lora_batched(y, x, a, b, ranks, scales, index, s));
}

void column_sum(const Tensor& out, const Tensor& in, bool accumulate) {
  check_floating("column_sum", in);
  TS_CHECK(in.ndim() >= 1, "column_sum: in {} has no columns", in.str());
  check_same_device("column_sum", out, in);
  check_f32("column_sum", out, in.size(-1));
  if (out.numel() == 0) return;
  if (in.numel() == 0) {
    if (!accumulate) fill(out, 0.0f);
    return;
  }
  TS_DISPATCH(in.device(), column_sum(out, in, accumulate));
}

void dropout(const Tensor& out, const Tensor& in, float p, uint64_t key, uint64_t first) {
  check_floating("dropout", in);
  check_same("dropout", out, in);
  TS_CHECK(p >= 0.0f && p < 1.0f, "dropout: p {} should be in [0, 1)", p);
  if (in.numel() == 0) return;
  TS_DISPATCH(in.device(), dropout(out, in, p, key, first));
}

namespace {

// The parts of w as packed_part_specs describes them, all on one device.
void check_packed(const char* op, const PackedTensor& w) {
  TS_CHECK(w.defined(), "{}: the packed tensor {} has no parts", op, w.str());
  const std::vector<PackedPartSpec> specs = packed_part_specs(w.spec, w.shape);
  TS_CHECK(specs.size() == w.parts.size(), "{}: {} should have {} parts, has {}", op, w.str(), specs.size(),
           w.parts.size());
  TS_CHECK(resolve_quant_spec(w.spec, w.shape) == w.spec, "{}: {} has an unresolved spec", op, w.str());
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& part = w.parts[i];
    TS_CHECK(part.defined() && part.shape() == specs[i].shape && part.dtype() == specs[i].dtype,
             "{}: part {} of {} is {}, expected {}{}", op, specs[i].name, w.str(),
             part.defined() ? part.str() : "undefined", dtype_name(specs[i].dtype), shape_str(specs[i].shape));
    check_same_device(op, part, w.parts[0]);
  }
}

void check_unpacked(const char* op, const Tensor& t, const PackedTensor& w) {
  check_floating(op, t);
  TS_CHECK(t.numel() == w.numel(), "{}: {} should hold the {} elements of {}", op, t.str(), w.numel(), w.str());
  check_same_device(op, t, w.parts[0]);
}

}  // namespace

void quantize(const PackedTensor& out, const Tensor& x) {
  check_packed("quantize", out);
  check_unpacked("quantize", x, out);
  TS_DISPATCH(x.device(), quantize(out, x));
}

void dequantize(const Tensor& out, const PackedTensor& w) {
  check_packed("dequantize", w);
  check_unpacked("dequantize", out, w);
  TS_DISPATCH(out.device(), dequantize(out, w));
}

void gemm_packed(const Tensor& c, const Tensor& a, const PackedTensor& w, bool trans_b, float alpha, float beta,
                 const Tensor& bias, PackedGemmKernel kernel) {
  check_packed("gemm_packed", w);
  TS_CHECK(w.shape.size() == 2, "gemm_packed: {} is not a matrix", w.str());
  check_floating("gemm_packed", a);
  check_same_device("gemm_packed", a, w.parts[0]);
  check_same_device("gemm_packed", c, a);
  const GemmShape s = gemm_shape("gemm_packed", c, a, w.shape, w.str(), false, trans_b, bias);
  if (s.m == 0 || s.n == 0) return;
  TS_DISPATCH(c.device(), gemm_packed(c, a, w, s, alpha, beta, bias, kernel));
}

void project_many_packed(std::span<const Tensor> outs, const Tensor& x, std::span<const PackedTensor* const> weights,
                         std::span<const Tensor> biases) {
  const char* op = "project_many_packed";
  const std::vector<GemmShape> shapes = many_shapes(
      op, outs, x, weights.size(), biases,
      [&](size_t i) {
        TS_CHECK(weights[i] != nullptr, "{}: weights[{}] is null", op, i);
        check_packed(op, *weights[i]);
        TS_CHECK(weights[i]->shape.size() == 2, "{}: weights[{}] {} is not a matrix", op, i, weights[i]->str());
        check_same_device(op, weights[i]->parts[0], x);
      },
      [&](size_t i) { return weights[i]->shape; }, [&](size_t i) { return weights[i]->str(); });
  if (shapes[0].m == 0) return;
  TS_DISPATCH(x.device(), project_many_packed(outs, x, weights, biases, shapes));
}

void project_swiglu_packed(const Tensor& out, const Tensor& x, const PackedTensor& gate, const PackedTensor& up) {
  const char* op = "project_swiglu_packed";
  TS_CHECK(x.defined() && x.ndim() >= 1, "{}: x must be [T, K], got {}", op, x.defined() ? x.str() : "undefined");
  check_floating(op, x);
  for (const PackedTensor* w : {&gate, &up}) {
    check_packed(op, *w);
    check_same_device(op, w->parts[0], x);
  }
  TS_CHECK(gate.shape.size() == 2 && gate.shape == up.shape, "{}: gate {} and up {} must be [F, K] alike", op,
           gate.str(), up.str());
  TS_CHECK(out.defined() && out.dtype() == x.dtype(), "{}: out must have x's dtype {}, got {}", op,
           dtype_name(x.dtype()), out.defined() ? out.str() : "undefined");
  check_same_device(op, out, x);
  const GemmShape s = gemm_shape(op, out, x, gate.shape, gate.str(), false, true, Tensor());
  if (s.m == 0 || s.n == 0) return;
  TS_DISPATCH(x.device(), project_swiglu_packed(out, x, gate, up, s));
}

void fake_quantize(const Tensor& out, const Tensor& w, const QuantSpec& spec) {
  TS_CHECK(out.shape() == w.shape(), "fake_quantize: out {} should have the shape of w {}", out.str(), w.str());
  const PackedTensor packed = PackedTensor::empty(spec, w.shape(), w.device());
  quantize(packed, w);
  dequantize(out, packed);
}

void fake_quantize_mask(const Tensor& grad, const Tensor& w, const QuantSpec& given) {
  const QuantSpec spec = resolve_quant_spec(given, w.shape());
  check_floating("fake_quantize_mask", w);
  check_same_device("fake_quantize_mask", grad, w);
  check_f32("fake_quantize_mask", grad, w.numel());
  if (spec.scheme != QuantScheme::Int4 && spec.scheme != QuantScheme::Q4_0) return;
  TS_DISPATCH(w.device(), quantize_mask(grad, w, spec));
}

void fake_quantize_rows_int8(const Tensor& out, const Tensor& x) {
  check_floating("fake_quantize_rows_int8", x);
  TS_CHECK(x.ndim() >= 1 && x.size(-1) > 0, "fake_quantize_rows_int8: x {} has no features", x.str());
  check_same("fake_quantize_rows_int8", out, x);
  if (x.numel() == 0) return;
  TS_DISPATCH(x.device(), fake_quantize_rows_int8(out, x));
}

namespace {

// w a matrix under a matrix scheme; scale (and zero, which asymmetric int4 needs and nothing
// else has) floating, of quant_scale_shape, on w's device.
QuantSpec check_scaled(const char* op, const Tensor& w, const Tensor& scale, const Tensor& zero, QuantSpec spec) {
  check_floating(op, w);
  TS_CHECK(spec.scheme != QuantScheme::NF4, "{}: nf4 has no learnable scales", op);
  spec = resolve_quant_spec(spec, w.shape());
  const Shape shape = quant_scale_shape(spec, w.shape());
  check_floating(op, scale);
  check_same_device(op, scale, w);
  TS_CHECK(scale.shape() == shape, "{}: scale {} should be {}", op, scale.str(), shape_str(shape));
  const bool needs_zero = spec.scheme == QuantScheme::Int4 && !spec.symmetric;
  TS_CHECK(zero.defined() == needs_zero, "{}: {}", op,
           needs_zero ? "asymmetric int4 needs a zero point per group" : "only asymmetric int4 has zero points");
  if (zero.defined()) {
    check_floating(op, zero);
    check_same_device(op, zero, w);
    TS_CHECK(zero.shape() == shape, "{}: zero {} should be {}", op, zero.str(), shape_str(shape));
  }
  return spec;
}

}  // namespace

Shape quant_scale_shape(const QuantSpec& given, const Shape& w) {
  const QuantSpec spec = resolve_quant_spec(given, w);
  TS_CHECK(spec.scheme != QuantScheme::NF4, "nf4 has no per-row groups of scales");
  return {w.at(0), w.at(1) / spec.group_size};
}

void quant_group_scales(const Tensor& scale, const Tensor& zero, const Tensor& w, const QuantSpec& given) {
  const QuantSpec spec = check_scaled("quant_group_scales", w, scale, zero, given);
  TS_DISPATCH(w.device(), quant_group_scales(scale, zero, w, spec));
}

void quantize_scaled(const PackedTensor& out, const Tensor& x, const Tensor& scale, const Tensor& zero) {
  check_packed("quantize_scaled", out);
  check_unpacked("quantize_scaled", x, out);
  TS_CHECK(x.shape() == out.shape, "quantize_scaled: x {} should have the shape of {}", x.str(), out.str());
  check_scaled("quantize_scaled", x, scale, zero, out.spec);
  TS_DISPATCH(x.device(), quantize_scaled(out, x, scale, zero));
}

void fake_quantize_scaled(const Tensor& out, const Tensor& w, const Tensor& scale, const Tensor& zero,
                          const QuantSpec& spec) {
  TS_CHECK(out.shape() == w.shape(), "fake_quantize_scaled: out {} should have the shape of w {}", out.str(), w.str());
  const PackedTensor packed = PackedTensor::empty(check_scaled("fake_quantize_scaled", w, scale, zero, spec),
                                                  w.shape(), w.device());
  quantize_scaled(packed, w, scale, zero);
  dequantize(out, packed);
}

void fake_quantize_scaled_backward(const Tensor& g, const Tensor& grad_scale, const Tensor& grad_zero, const Tensor& w,
                                   const Tensor& scale, const Tensor& zero, const QuantSpec& given) {
  const char* op = "fake_quantize_scaled_backward";
  const QuantSpec spec = check_scaled(op, w, scale, zero, given);
  check_same_device(op, g, w);
  check_f32(op, g, w.numel());
  check_same_device(op, grad_scale, w);
  check_f32(op, grad_scale, scale.numel());
  TS_CHECK(grad_zero.defined() == zero.defined(), "{}: grad_zero must be given exactly when zero is", op);
  if (grad_zero.defined()) {
    check_same_device(op, grad_zero, w);
    check_f32(op, grad_zero, zero.numel());
  }
  TS_DISPATCH(w.device(), quantize_scaled_backward(g, grad_scale, grad_zero, w, scale, zero, spec));
}

}  // namespace tessera::ops
