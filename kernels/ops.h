// The op table: every numeric op Tessera uses, one function each, dispatching on the device of
// its tensors. kernels/cpu holds the readable fp32 reference of each op; kernels/cuda the fast
// version; tests/kernels compares the two on fresh random inputs.
//
// Conventions: outputs come first and are preallocated by the caller; all tensors of one call
// live on the same device; CUDA ops are queued on the device's current stream.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/input_norm.h"
#include "kernels/quant_format.h"

namespace tessera::ops {

// t[i] = value.
void fill(const Tensor& t, float value);

// t[i] = low + (high - low) * U(seed, offset + i): identical on CPU and GPU (core/rng.h).
void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high);
// t[i] = mean + std * N(seed, offset + i).
void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std);

// dst[i] = src[i] converted to dst's dtype (f32, bf16, f16 among themselves; equal dtypes for
// the rest). Equal element counts. Across devices the dtypes must be equal.
void copy(const Tensor& dst, const Tensor& src);
// A new tensor on src's device holding src converted to `dtype`.
Tensor cast(const Tensor& src, DType dtype);

// out[i] = alpha * a[i] + beta * b[i]; floating dtypes, all three alike; out may alias a or b.
void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha = 1.0f, float beta = 1.0f);
// out[i] = alpha * in[i]; out may alias in.
void scale(const Tensor& out, const Tensor& in, float alpha);

// Row-major C = alpha * op(A) @ op(B) + beta * C (+ bias broadcast over rows).
// Each operand is seen as 2-D by flattening all but its last dimension: A is [M, K] ([K, M] when
// trans_a), B is [K, N] ([N, K] when trans_b), C holds M x N elements with last dimension N.
// dtypes: A and B alike (f32, bf16 or f16); C f32 or A's dtype; bias [N] of C's dtype.
// Accumulation is fp32 on both backends.
void gemm(const Tensor& c, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
          float alpha = 1.0f, float beta = 0.0f, const Tensor& bias = Tensor());
// The small-M kernel choice of gemm on CUDA (see SmallMChoice), process-wide: read at first use
// from TESSERA_SMALL_M (auto, cublas, gemv or fused); benchmarks and tests set it. The CPU has one gemm and ignores it.
SmallMChoice small_m_choice();
void set_small_m_choice(SmallMChoice choice);
const char* small_m_kernel_name(SmallMKernel kernel);

// ---- Transformer layers (except attention) ----
// Activations are [tokens, features] row-major ([B, S, H] is seen as B*S rows). CUDA takes
// f32/bf16/f16 activations and computes in fp32; where HF rounds an intermediate to the
// activation dtype (bf16 models), both backends round at the same place so they agree with HF.
// Parameter gradients are f32 and accumulated (+=); activation gradients are written (=).

// out[n, :] = weight[ids[n], :]. ids int32 or int64; out has weight's dtype. An id outside
// [0, V) is an error on the CPU; on the GPU ids are trusted to the data pipeline (checking them
// on the host would cost a sync per step) and a kernel meeting one traps (the CUDA context is
// lost and the next CUDA call fails) rather than train on garbage.
void embedding_forward(const Tensor& out, const Tensor& weight, const Tensor& ids);
// dweight[ids[n], :] += dout[n, :]; repeated ids accumulate.
void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids);

// Llama/Qwen RMSNorm over the last dimension D of x [N, D]:
//   rstd[n] = 1 / sqrt(mean(x[n, :]^2) + eps) (f32, saved for backward),
//   out = round_x(x * rstd) * weight, where round_x rounds to x's dtype as HF's
//   `weight * hidden.to(input_dtype)` does. weight [D] has x's dtype or f32; out has x's dtype.
// Qwen3's q_norm/k_norm are this op on rows of head_dim.
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, float eps);
// The residual add and the norm after it in one pass (one launch on the GPU): sum = a + b rounded
// to a's dtype (exactly ops::add), then rmsnorm_forward(out, rstd, sum, weight, eps), bit for bit.
// a, b, sum and out share a shape and dtype; sum may alias a or b.
void add_rmsnorm_forward(const Tensor& sum, const Tensor& out, const Tensor& rstd, const Tensor& a, const Tensor& b,
                         const Tensor& weight, float eps);
// dx (written) and dweight [D] f32 (+=; undefined for a frozen weight) from dout, x, weight and
// the saved rstd.
void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd);

// Rotary embedding in HF's rotate_half convention, in place on x [N, heads, D]: element i < D/2
// pairs with i + D/2 and both turn by angle = float(positions[n]) * inv_freq[i] (f32, as HF).
// cos and sin are taken in f32, scaled by attention_scaling and rounded to x's dtype before the
// rotation, as HF does. positions [N] int32, per token (packed documents restart at 0).
void rope_forward(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling);
// rope_forward on q [N, Hq, D] and on k [N, Hkv, D] in one pass (one launch on the GPU), bit for bit.
void rope_forward_qk(const Tensor& q, const Tensor& k, const Tensor& positions, const Tensor& inv_freq,
                     float attention_scaling);
// The transpose of rope_forward (rotation by -angle), in place on the gradient dx [N, heads, D].
void rope_backward(const Tensor& dx, const Tensor& positions, const Tensor& inv_freq, float attention_scaling);

// out = silu(gate) * up, all [N, F] of one dtype; silu(gate) is rounded to that dtype before the
// product (HF's act_fn(gate_proj(x)) * up_proj(x) in bf16).
void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up);
// dgate and dup (written) from dout, gate and up, rounding where PyTorch autograd does.
void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up);

// Row-wise softmax cross-entropy on logits [N, V] (floating): loss[n] = logsumexp(logits[n]) -
// logits[n, labels[n]] (f32 [N]). A defined grad (floating, the shape of logits, any floating
// dtype; logits itself to write in place) receives (softmax - onehot) * grad_scale, rounded to its
// dtype. labels int32/int64; label -100 means ignore: loss 0 and a zero gradient row. Other labels
// outside [0, V) are an error on the CPU and trap on the GPU (see embedding_forward).
void cross_entropy_rows(const Tensor& loss, const Tensor& logits, const Tensor& labels, float grad_scale,
                        const Tensor& grad);

// Greedy picks of rows of logits [R, V] (f32, bf16 or f16), for decoding without copying the
// rows to the host: index[r] (int32 [R]) = the first maximum of row r, and logprob[r] (f32 [R])
// = its log-softmax, max - log(sum_v exp(x_v - max)).
void argmax_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits);

// Sampled picks of rows of logits [R, V] (f32, bf16 or f16) without copying the rows to the host:
// index[r] (int32 [R]) and logprob[r] (f32 [R], the log-softmax of the raw row at the token, as
// argmax_rows). params: int32 [R, 8] on the logits' device, each row a SamplingRow
// (kernels/sampling_row.h). Per row, z its logits (NaN counts as -inf) and m their maximum:
//   temperature 0, or no finite maximum: the first maximum (argmax_rows' pick);
//   else each token weighs q = floor(exp((z - m) / T) x 2^40) (f32 exp) and is kept when
//     top-k: z >= the k-th largest logit (ties with it stay, so more than k may);
//     top-p: z >= the largest t such that the top-k's tokens with z >= t weigh >= ceil(p x the
//            top-k's weight): the fewest best tokens that reach p, whole groups of equal logits;
//     min-p: exp((z - m) / T) >= min_p;
//   and the token is the first, by id, whose running sum of kept weights exceeds
//   floor(u x their sum), u = 53 bits of Philox(seed, counter) / 2^53. The integer sums make the
//   backends differ only where an f32 exp's last bit moves a row across a boundary.
void sample_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits, const Tensor& params);

// Cross-entropy of the output projection logits = hidden [N, H] @ weight [V, H]^T without
// holding f32 logits for all N tokens: chunk_tokens rows at a time it computes the chunk's f32
// logits, turns them into gradients with cross_entropy_rows, and runs the two backward gemms.
//   loss_sum [1] f32 (written): sum of the per-token losses (not scaled by grad_scale);
//   dhidden [N, H] (written; undefined to skip): d(grad_scale * loss_sum)/d hidden;
//   dweight [V, H] f32 (+=; undefined to skip).
// hidden and weight share a dtype; the logit gradient is rounded to that dtype for the backward
// gemms (what PyTorch does in a bf16 model), which keep f32 accumulation.
void linear_cross_entropy(const Tensor& loss_sum, const Tensor& dhidden, const Tensor& dweight,
                          const Tensor& hidden, const Tensor& weight, const Tensor& labels, float grad_scale,
                          int64_t chunk_tokens);

// ---- Optimizer ----

// AdamW hyper-parameters for one step; `step` counts from 1 (bias correction).
struct AdamWStep {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  int64_t step = 1;
  float grad_scale = 1.0f;  // multiplies the gradient first (1 / accumulation, clipping)
  // The gradient is set to zero once it is read, padding included: the next step's accumulator,
  // ready without a fill of its own (zero.overlap_step, where the update runs behind the next pass).
  bool zero_grad = false;
};

// One decoupled-weight-decay Adam step on fp32 master weights, as torch.optim.AdamW does it:
// p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), with g = grad * grad_scale.
// param, grad, m, v: f32, same size. `low` (optional, bf16/f16/f32, same size) receives the
// updated weights in its dtype in the same pass: the working copy for the next forward.
void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
           const Tensor& low = Tensor());

// One AdamW pass over a flat buffer made of spans that differ only in weight decay (a ZeRO unit's
// shard: matrices decay, norms and biases do not): exactly ops::adamw on each span, with
// s.weight_decay where the span decays and 0 where it does not. The spans tile [0, end of the
// last) in order; past it, up to param.numel(), low is zeroed (a shard's padding) and the fp32
// tensors are left as they are. On the GPU one launch of short-lived blocks covers up to 32 spans
// (TESSERA_ADAMW=ranges: each span is one ops::adamw launch, for comparison).
struct AdamWSpan {
  int64_t begin = 0, end = 0;
  bool decays = true;
};
void adamw_spans(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
                 const Tensor& low, const std::vector<AdamWSpan>& spans);

// out[0] += sum of x[i]^2 in fp32 (for gradient norms); out is f32 [1] on x's device.
void sum_squares(const Tensor& out, const Tensor& x);

// ---- Attention ----

// Causal softmax attention with grouped-query heads (GQA/MQA), fp32 softmax and accumulation.
// q [B, S, Hq, D], k and v [B, S, Hkv, D] with Hq % Hkv == 0: query head h reads kv head
// h / (Hq / Hkv). out [B, S, Hq, D] like q; lse [B, Hq, S] f32 holds the log-sum-exp of each
// query's scaled scores, for the backward pass. q, k, v and out share a floating dtype.
// Query i sees key j when j <= i and, given segment_ids [B, S] i32 (packed documents),
// segment_ids[j] == segment_ids[i].
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       float softmax_scale, const Tensor& segment_ids = Tensor());
// Gradients of attention_forward, written (not accumulated) into dq, dk, dv (shapes and dtypes of
// q, k, v); dk and dv sum over the query heads sharing a kv head. out and lse come from the forward.
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        float softmax_scale, const Tensor& segment_ids = Tensor());
// The documents of packed rows, for the attention kernels to bound the keys a query tile reads
// and the queries a key tile feeds: bounds [2, B, S] i32 gets, for row i of batch row b, the first
// (bounds[0, b, i]) and last (bounds[1, b, i]) row of the run of equal segment_ids holding i; -1 in
// both, for every row of a batch row whose ids decrease somewhere (a document need not be one run
// there, and the kernels compare ids instead).
void document_bounds(const Tensor& bounds, const Tensor& segment_ids);

// ---- Paged KV cache (inference) ----
// The cache is a pool of fixed-size blocks: k_cache and v_cache are [num_blocks, block_size, Hkv, D];
// a token's slot is block * block_size + offset. A sequence's block table row lists its blocks in
// order: key position p of the sequence lives in block block_tables[seq, p / block_size] at offset
// p % block_size. Unlike the other ops, the outputs come last here.

// Writes the keys and values of new tokens into their cache slots.
// k, v: [T, Hkv, D] (the new tokens, packed rows); slots: int32 [T], distinct, each in
// [0, num_blocks * block_size) or -1 for a padding row that is not written; k_cache, v_cache: [num_blocks, block_size, Hkv, D], same dtype as k/v
// (bf16 on CUDA, f32 on CPU). A slot outside the cache is an error on the CPU and traps on the GPU
// (see embedding_forward).
void paged_kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache, Tensor& v_cache);

// Causal attention of packed query tokens against the paged cache (which already holds their own keys).
// q, out: [T, Hq, D]; block_tables: int32 [S, max_blocks_per_seq]; query_seq: int32 [T] (the sequence of
// each query token, row of block_tables); query_pos: int32 [T] (its position: it attends to keys at
// positions max(0, pos - window + 1) .. pos of its sequence; window 0 = no sliding window).
// GQA: query head h reads kv head h / (Hq / Hkv). Softmax in fp32; scale is applied to q.k.
// q, the caches and out share a floating dtype (CUDA: bf16 or f16, D 64, 128 or 256). Entries of a
// block table past a sequence's last position are never read. On the CPU a query_seq outside
// [0, S), a query_pos outside [0, max_blocks_per_seq * block_size) or a block id outside
// [0, num_blocks) is an error; on the GPU it traps (see embedding_forward).
void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
                     const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, Tensor& out);

// ---- A decode step's fused ops (inference: InferenceModel, TESSERA_FUSED_DECODE) ----
// Each is exactly a sequence of the ops above, in fewer launches on the GPU where the shapes
// allow; elsewhere (and on the CPU) the backend runs that sequence itself.

// Projections of one input: outs[i] = x @ weights[i]^T + biases[i], each as
// ops::gemm(outs[i], x, weights[i], false, true, 1, 0, biases[i]) computes it. x [T, K] floating;
// weights[i] [N_i, K] and outs[i] [T, N_i] of x's dtype; biases empty or one per weight
// (undefined: none) [N_i] of x's dtype. With norm defined, x is first normed as
// ops::rmsnorm_forward(h, rstd, x, norm.weight, norm.eps) norms it and h goes in, bit for bit
// (a decode layer's input norm). On the GPU up to three weights (q, k, v) take one launch, the
// norm in it, when the small-M gemv takes each of them (T <= 4: kernels/cuda/small_m.h).
void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases = {}, const InputNorm& norm = {});
// The gated MLP's first half: out = swiglu(x @ gate^T, x @ up^T), both products rounded to x's
// dtype (ops::gemm twice, then ops::swiglu_forward), of x normed first where norm is defined (as
// project_many). x [T, K]; gate and up [F, K]; out [T, F]; one dtype. On the GPU one launch where
// the small-M gemv takes both weights.
void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up,
                    const InputNorm& norm = {});
// Both again with packed weights (a decode step over a quantized checkpoint): each product as
// ops::gemm_packed computes it (outs and out in x's dtype). On the GPU one launch of the fused
// packed gemv (TESSERA_PACKED_GEMV) where it takes every weight: T <= kFusedPackedRows, all of
// one scheme and spec (project_many_packed: up to 3 weights; project_swiglu_packed: gate and up
// of one shape).
void project_many_packed(std::span<const Tensor> outs, const Tensor& x, std::span<const PackedTensor* const> weights,
                         std::span<const Tensor> biases = {});
void project_swiglu_packed(const Tensor& out, const Tensor& x, const PackedTensor& gate, const PackedTensor& up);
// A projection with the residual add after it: out = residual + y with y = x @ weight^T + bias
// as ops::gemm computes it (rounded to x's dtype), then the sum as ops::add rounds it (a decode
// layer's o_proj and down_proj). x [T, K] floating; weight [N, K], residual and out [T, N], bias
// undefined or [N], all of x's dtype; out may be residual itself. On the GPU one launch where the
// small-M gemv takes the weight.
void project_add(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& residual,
                 const Tensor& bias = Tensor());
// Whether the ops above fold their input norm (norm true) or residual add into the launch of
// their product for `rows` rows against weight, as a decode layer wants them: on the GPU where
// the small-M gemv runs that product (kernels/cuda/small_m.h) and, with the norm, its rows fit
// in shared memory. The CPU answers for rows in [1, 4] as a GPU would for a weight it takes, so
// that CPU tests run the layer code a GPU decode step runs.
constexpr int64_t kFoldedGemvRows = 4;  // the gemv's most rows (kernels/cuda/gemv.h)
bool folds_into_gemv(int64_t rows, const Tensor& weight, bool norm);
// A layer's new queries and keys made ready, and the keys and values cached: with q_norm and
// k_norm defined (Qwen3), q and k are first RMS-normed per head (ops::rmsnorm_forward on rows of
// D with eps), then turned by ops::rope_forward_qk at positions; q and k change in place; then k
// and v go to their cache slots as ops::paged_kv_write writes them (slot -1: not written).
// q [T, Hq, D], k and v [T, Hkv, D] of the cache's dtype; the norms [D] of that dtype or f32.
// One launch on the GPU.
void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions, const Tensor& inv_freq,
                   float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots,
                   Tensor& k_cache, Tensor& v_cache);
// A decode step's attention with its RoPE and KV write: rope_kv_write(q, k, v, positions, ...,
// slots, k_cache, v_cache), then paged_attention(q, k_cache, v_cache, block_tables, query_seq,
// positions, window, scale, out). Every query token must be of its own sequence (query_seq
// distinct: a decode step, padding rows included), so that none attends to another's new key;
// the CPU checks it. q and k are consumed (their contents afterwards are unspecified). A padding
// row's output (slot -1) is unspecified too. On the GPU with TESSERA_PAGED_ATTN=v3, one launch
// (kernels/cuda/paged_attention.cu) with the same numbers bit for bit; else the two ops.
void rope_paged_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                          const Tensor& inv_freq, float attention_scaling, const Tensor& q_norm, const Tensor& k_norm,
                          float eps, const Tensor& slots, Tensor& k_cache, Tensor& v_cache, const Tensor& block_tables,
                          const Tensor& query_seq, int64_t window, float scale, Tensor& out);

// ---- Linear and LoRA ----

// out[j] = sum over rows i of in[i, j] (accumulate: out[j] += ...), in fp32. in is floating,
// seen as [rows, N] by its last dimension N; out is f32 [N] on in's device. The bias gradient
// of a Linear (the column sums of dy) and the loss sum over tokens.
void column_sum(const Tensor& out, const Tensor& in, bool accumulate = false);

// Inverted dropout with counter-based masks: out[i] = in[i] / (1 - p) where
// uniform(key, first + i) >= p (core/rng.h), else 0; out and in floating, alike (out may alias
// in). The same (key, first) gives the same mask on both backends, so backward (the same op on
// the gradient) and a recomputed forward need no saved mask. 0 <= p < 1.
void dropout(const Tensor& out, const Tensor& in, float p, uint64_t key, uint64_t first);

// Several LoRA adapters applied to the rows of one batch (punica's BGMV: gathered by row, rows of
// any adapter in any order): for each row t with n = index[t] >= 0,
//   y[t, :] += scales[n] * (x[t, :] A_n^T) B_n^T   with A_n = a[n, :ranks[n], :], B_n = b[n, :, :ranks[n]],
// the product in fp32 and y rounded once; rows with index -1 are left alone. y [T, out] and x [T, in]
// share a floating dtype with a [N, R, in] and b [N, out, R] (R: the largest rank; the padding
// past ranks[n] is never read); ranks int32 [N] in [0, R] (0: the adapter leaves this projection
// alone); scales f32 [N]; index int32 [T] in [-1, N). On the CPU a rank or index out of range is
// an error; on the GPU it traps (see embedding_forward).
void lora_batched(const Tensor& y, const Tensor& x, const Tensor& a, const Tensor& b, const Tensor& ranks,
                  const Tensor& scales, const Tensor& index);

// ---- Quantized weights (kernels/quant_format.h: schemes, parts; kernels/quant_math.h: the math) ----

// Quantizes x (floating, out.numel() elements, row-major) into the preallocated parts of out, on
// x's device, as out.spec defines: every code and scale equal on both backends.
//   nf4 (bitsandbytes): absmax per block of 64; each x * (1 / absmax) takes the NF4 code whose
//     midpoints bracket it; the absmax are double-quantized (offset = their mean; blocks of 256
//     with an fp32 scale, 8-bit dynamic map). On the GPU the absmax go to the host once for the
//     mean, which waits for the stream.
//   int8: scale = row absmax / 127, q = clamp(rint(x * (1 / scale)), -127, 127).
//   int4: per group, scale = f16(absmax / 7.5) (symmetric) or f16((max(max, 0) - min(min, 0)) / 15)
//     with zero = clamp(-rint(min(min, 0) / scale), 0, 15); q = clamp(rint(x / scale) + zero, 0, 15),
//     zero 8 when symmetric (divisions are products with the fp32 reciprocal).
void quantize(const PackedTensor& out, const Tensor& x);
// out (floating, w.numel() elements) = the weights w holds, each one fp32 product rounded once
// to out's dtype: nf4 NF4[q] * (map[qa] * scale + offset), int8 q * scale, int4 (q - zero) * scale.
void dequantize(const Tensor& out, const PackedTensor& w);

// gemm with a packed B: C = alpha * A op(W) + beta * C (+ bias), W a packed [N, K] matrix with
// trans_b (C = A W^T: a projection's forward) or [K, N] without (C = A W: its input gradient).
// A as for gemm (floating, leading dimensions flattened); C f32 or A's dtype.
// The CPU reference dequantizes W to A's dtype, then gemm runs. On the GPU, C = A W^T with at most
// kFusedPackedRows rows of A runs the fused gemv (kernels/cuda/gemv_packed.cu: the packed weights
// read once, dequantized in registers, fp32 sums; with a 16-bit A on tensor cores, each
// weight rounded to A's dtype, otherwise fp32 products with the fp32 weight values: what a
// decoding step needs; TESSERA_PACKED_GEMV picks a variant, README); everything else dequantizes into a workspace in A's dtype and runs
// cuBLASLt (the prefill and training path). `kernel` forces one of the two (benchmarks, tests).
constexpr int64_t kFusedPackedRows = 8;
void gemm_packed(const Tensor& c, const Tensor& a, const PackedTensor& w, bool trans_b, float alpha = 1.0f,
                 float beta = 0.0f, const Tensor& bias = Tensor(), PackedGemmKernel kernel = PackedGemmKernel::Auto);

// ---- Quantization-aware training ----

// out = dequantize(quantize(w)) under spec, in out's dtype (w and out floating, of one shape): the
// values a packed copy of w holds, bit for bit (exact by construction: the same two ops).
void fake_quantize(const Tensor& out, const Tensor& w, const QuantSpec& spec);
// The straight-through estimator's mask for w's fake quantization under spec: grad (f32, w's
// shape) is zeroed where w's code is clamped (int4: outside [0, 15] before the clamp; q4_0: above
// 15) and left alone elsewhere. int8, q8_0 and nf4 scale by their group's absmax and never clamp.
void fake_quantize_mask(const Tensor& grad, const Tensor& w, const QuantSpec& spec);
// Activations x [rows, features] fake-quantized to int8 per row (token), dynamic and asymmetric
// (torchao's 8da): scale = (max(max, 0) - min(min, 0)) / 255, zero = clamp(-128 - rint(min(min, 0) /
// scale), -128, 127), x' = (clamp(rint(x / scale) + zero, -128, 127) - zero) scale. out like x.
// Nothing is clamped, so the straight-through gradient is the identity.
void fake_quantize_rows_int8(const Tensor& out, const Tensor& x);

// ---- QAT with learned scales (quant.qat.learnable_scales; kernels/quant_math.h defines them) ----
// For w [rows, cols] under a matrix scheme (int8, int4, q8_0, q4_0; not nf4), one scale per group
// of spec.group_size along the row: scale [rows, cols / group] (int8: [rows, 1]); zero, of that
// shape, for asymmetric int4 only (undefined otherwise). Scales and zeros: any floating dtype.

// Where learning starts: RTN's scale of each group before it is stored (int8 and q8_0 amax / 127,
// q4_0 m / -8, int4 its f16 scale) and, for asymmetric int4, its zero point, into scale and zero.
void quant_group_scales(const Tensor& scale, const Tensor& zero, const Tensor& w, const QuantSpec& spec);
// Quantizes x into out (out.spec's scheme) with the given scale (and zero) of each group: RTN's
// packed copy of x when they are RTN's.
void quantize_scaled(const PackedTensor& out, const Tensor& x, const Tensor& scale, const Tensor& zero);
// out = dequantize(quantize_scaled(w, scale, zero)) in out's dtype: QAT's weight with learned
// scales, exact by construction (the same two ops write the export).
void fake_quantize_scaled(const Tensor& out, const Tensor& w, const Tensor& scale, const Tensor& zero,
                          const QuantSpec& spec);
// Its straight-through backward, from g (f32, w's shape) = dL/dw' of one pass: grad_scale (f32,
// scale's shape) += each group's sum of g * dw'/ds, grad_zero (when defined) += sum of g * dw'/dz,
// and then g is zeroed where w's code was clamped (dw'/dx = 0 there).
void fake_quantize_scaled_backward(const Tensor& g, const Tensor& grad_scale, const Tensor& grad_zero, const Tensor& w,
                                   const Tensor& scale, const Tensor& zero, const QuantSpec& spec);
// The shape of w's scale tensor under spec: [rows, cols / group] (spec resolved for w's shape).
Shape quant_scale_shape(const QuantSpec& spec, const Shape& w);

}  // namespace tessera::ops
