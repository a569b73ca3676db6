// The fused decode ops' argument checks: each bad call names the op and what is wrong, and the
// CPU ops are exactly the plain ops they stand for (tests/kernels has the GPU's).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/stacked_ops.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// fn() throws an Error whose message holds `part`.
template <typename Fn>
void expect_error(Fn&& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

Tensor f32(Shape shape, uint64_t seed) { return random_tensor(std::move(shape), DType::F32, Device::cpu(), seed); }

}  // namespace

TEST(FusedDecodeOps, ProjectManyRefusesMismatchedArguments) {
  const Tensor x = f32({2, 8}, 1), w = f32({3, 8}, 2), out = Tensor::empty({2, 3}, DType::F32);
  const std::vector<Tensor> one{w}, two{w, w}, outs{out};
  expect_error([&] { ops::project_many(outs, x, two); }, "1 outputs for 2 weights");
  expect_error([&] { ops::project_many(outs, x, one, two); }, "2 biases for 1 weights");
  const std::vector<Tensor> narrow{Tensor::empty({2, 4}, DType::F32)};
  expect_error([&] { ops::project_many(narrow, x, one); }, "project_many: C");
  const std::vector<Tensor> bf16_out{Tensor::empty({2, 3}, DType::BF16)};
  expect_error([&] { ops::project_many(bf16_out, x, one); }, "outs[0] must be f32");
  const std::vector<Tensor> short_bias{f32({2}, 3)};
  expect_error([&] { ops::project_many(outs, x, one, short_bias); }, "bias");
}

TEST(FusedDecodeOps, ProjectSwigluIsTheThreePlainOps) {
  const Tensor x = f32({3, 16}, 4), gate = f32({5, 16}, 5), up = f32({5, 16}, 6);
  Tensor out = Tensor::empty({3, 5}, DType::F32), g = Tensor::empty({3, 5}, DType::F32), u = Tensor::empty({3, 5}, DType::F32);
  ops::project_swiglu(out, x, gate, up);
  ops::gemm(g, x, gate, false, true);
  ops::gemm(u, x, up, false, true);
  Tensor want = Tensor::empty({3, 5}, DType::F32);
  ops::swiglu_forward(want, g, u);
  EXPECT_EQ(out.to_vector<float>(), want.to_vector<float>());
  expect_error([&] { ops::project_swiglu(out, x, gate, f32({4, 16}, 7)); }, "must be [F, K] alike");
}

// The packed forms: each product exactly gemm_packed's, then (swiglu) swiglu_forward; bad calls
// name the op and what is wrong.
TEST(FusedDecodeOps, PackedFormsAreThePlainPackedOps) {
  const Tensor x = f32({3, 64}, 8);
  const PackedTensor q = quant::quantize(f32({5, 64}, 9), {QuantScheme::Int4, 32, false});
  const PackedTensor k = quant::quantize(f32({3, 64}, 10), {QuantScheme::Int4, 32, false});
  const PackedTensor v = quant::quantize(f32({3, 64}, 11), {QuantScheme::Int8});  // another scheme
  const Tensor bias = f32({3}, 12);
  std::vector<Tensor> outs{Tensor::empty({3, 5}, DType::F32), Tensor::empty({3, 3}, DType::F32),
                           Tensor::empty({3, 3}, DType::F32)};
  const std::vector<Tensor> biases{Tensor(), bias, Tensor()};
  const std::vector<const PackedTensor*> weights{&q, &k, &v};
  ops::project_many_packed(outs, x, weights, biases);
  for (size_t i = 0; i < weights.size(); ++i) {
    Tensor want = Tensor::empty(outs[i].shape(), DType::F32);
    ops::gemm_packed(want, x, *weights[i], true, 1.0f, 0.0f, biases[i]);
    EXPECT_EQ(outs[i].to_vector<float>(), want.to_vector<float>()) << "weight " << i;
  }
  const PackedTensor up = quant::quantize(f32({5, 64}, 13), {QuantScheme::Int4, 32, false});
  Tensor act = Tensor::empty({3, 5}, DType::F32), g = Tensor::empty({3, 5}, DType::F32), u = Tensor::empty({3, 5}, DType::F32);
  ops::project_swiglu_packed(act, x, q, up);
  ops::gemm_packed(g, x, q, true);
  ops::gemm_packed(u, x, up, true);
  Tensor want = Tensor::empty({3, 5}, DType::F32);
  ops::swiglu_forward(want, g, u);
  EXPECT_EQ(act.to_vector<float>(), want.to_vector<float>());

  const std::vector<const PackedTensor*> none{nullptr};
  const std::vector<Tensor> first{outs[0]};
  expect_error([&] { ops::project_many_packed(first, x, none); }, "project_many_packed: weights[0] is null");
  expect_error([&] { ops::project_many_packed(outs, x, std::vector<const PackedTensor*>{&q}); }, "3 outputs for 1 weights");
  const std::vector<Tensor> bf16_out{Tensor::empty({3, 5}, DType::BF16)};
  const std::vector<const PackedTensor*> just_q{&q};
  expect_error([&] { ops::project_many_packed(bf16_out, x, just_q); }, "project_many_packed: outs[0] must be f32");
  expect_error([&] { ops::project_swiglu_packed(act, x, q, k); }, "project_swiglu_packed: gate");
  expect_error([&] { ops::project_swiglu_packed(Tensor::empty({3, 5}, DType::BF16), x, q, up); },
               "project_swiglu_packed: out must have x's dtype f32");
}

// The norm prologue is rmsnorm_forward then the projection; project_add is gemm then add; the CPU
// folds them for the rows a GPU gemv takes (1 to 4).
TEST(FusedDecodeOps, NormedProjectionsAndProjectAddAreThePlainOps) {
  const Tensor x = f32({3, 16}, 15), norm = f32({16}, 16), w = f32({5, 16}, 17), up = f32({5, 16}, 18);
  const InputNorm in{norm, 1e-5f};
  Tensor h = Tensor::empty({3, 16}, DType::F32), rstd = Tensor::empty({3}, DType::F32);
  ops::rmsnorm_forward(h, rstd, x, norm, in.eps);
  Tensor got = Tensor::empty({3, 5}, DType::F32), want = Tensor::empty({3, 5}, DType::F32);
  ops::project_many(std::vector<Tensor>{got}, x, std::vector<Tensor>{w}, {}, in);
  ops::gemm(want, h, w, false, true);
  EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>());
  ops::project_swiglu(got, x, w, up, in);
  ops::project_swiglu(want, h, w, up);
  EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>());
  const Tensor residual = f32({3, 5}, 19);
  Tensor y = Tensor::empty({3, 5}, DType::F32);
  ops::project_add(got, x, w, residual);
  ops::gemm(y, x, w, false, true);
  ops::add(want, residual, y);
  EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>());
  Tensor in_place = residual.clone();
  ops::project_add(in_place, x, w, in_place);
  EXPECT_EQ(in_place.to_vector<float>(), want.to_vector<float>());
  for (int64_t rows : {1, 4}) EXPECT_TRUE(ops::folds_into_gemv(rows, w, true));
  for (int64_t rows : {0, 5}) EXPECT_FALSE(ops::folds_into_gemv(rows, w, false));
}

TEST(FusedDecodeOps, NormsAndResidualsRefuseMismatchedArguments) {
  const Tensor x = f32({2, 8}, 20), w = f32({3, 8}, 21), out = Tensor::empty({2, 3}, DType::F32);
  const std::vector<Tensor> one{w}, outs{out};
  expect_error([&] { ops::project_many(outs, x, one, {}, InputNorm{f32({7}, 22), 1e-6f}); }, "weight");
  expect_error([&] { ops::project_swiglu(out, x, w, w, InputNorm{f32({8}, 23), -1.0f}); }, "eps -1 is negative");
  expect_error([&] { ops::project_add(out, x, w, f32({2, 4}, 24)); }, "project_add: residual");
  expect_error([&] { ops::project_add(out, x, w, Tensor::empty({2, 3}, DType::BF16)); }, "must have x's dtype");
  expect_error([&] { ops::project_add(out, x, f32({3, 7}, 25), f32({2, 3}, 26)); }, "inner dimensions");
  expect_error([&] { ops::project_add(out, x, w, f32({2, 3}, 27), f32({4}, 28)); }, "bias");
}

TEST(FusedDecodeOps, RopeKvWriteRefusesMismatchedArguments) {
  const int64_t T = 2, hq = 4, hkv = 2, d = 8;
  Tensor q = f32({T, hq, d}, 8), k = f32({T, hkv, d}, 9), v = f32({T, hkv, d}, 10);
  Tensor k_cache = Tensor::empty({3, 4, hkv, d}, DType::F32), v_cache = Tensor::empty({3, 4, hkv, d}, DType::F32);
  const Tensor positions = Tensor::from_vector(std::vector<int32_t>{0, 5}, {T}, DType::I32);
  const Tensor slots = Tensor::from_vector(std::vector<int32_t>{1, -1}, {T}, DType::I32);
  const Tensor freq = inverse_frequencies(d, 1e4), norm = f32({d}, 11);
  auto call = [&](const Tensor& kk, const Tensor& qn, const Tensor& kn, const Tensor& sl) {
    ops::rope_kv_write(q, kk, v, positions, freq, 1.0f, qn, kn, 1e-6f, sl, k_cache, v_cache);
  };
  expect_error([&] { call(f32({T, hkv + 1, d}, 12), Tensor(), Tensor(), slots); }, "rope_kv_write: k is");
  expect_error([&] { call(k, norm, Tensor(), slots); }, "q_norm and k_norm go together");
  expect_error([&] { call(k, Tensor(), Tensor(), slots.flat_slice(0, 1)); }, "slots");
  expect_error([&] { call(k, f32({d + 2}, 13), f32({d + 2}, 14), slots); }, "weight");
  expect_error([&] { call(k, Tensor(), Tensor(), Tensor::from_vector(std::vector<int32_t>{0, 12}, {T}, DType::I32)); },
               "outside the cache");
}

// rope_paged_attention is rope_kv_write then paged_attention; it names a step with two tokens of
// one sequence (which the GPU's single launch cannot run) and its other bad arguments.
TEST(FusedDecodeOps, RopePagedAttentionIsRopeKvWriteThenAttention) {
  const int64_t T = 2, hq = 4, hkv = 2, d = 8, blocks = 3, block_size = 4;
  const Tensor q = f32({T, hq, d}, 15), k = f32({T, hkv, d}, 16), v = f32({T, hkv, d}, 17);
  const Tensor positions = Tensor::from_vector(std::vector<int32_t>{0, 5}, {T}, DType::I32);
  // Sequence 0 at position 0 (block 0), sequence 1 at position 5 (blocks 2 then 1): slots 0 and 5.
  const Tensor slots = Tensor::from_vector(std::vector<int32_t>{0, 5}, {T}, DType::I32);
  const Tensor tables = Tensor::from_vector(std::vector<int32_t>{0, 0, 2, 1}, {T, 2}, DType::I32);
  const Tensor seqs = Tensor::from_vector(std::vector<int32_t>{0, 1}, {T}, DType::I32);
  const Tensor freq = inverse_frequencies(d, 1e4), q_norm = f32({d}, 18), k_norm = f32({d}, 19);
  const Shape cache{blocks, block_size, hkv, d};
  Tensor k_cache = f32(cache, 20), v_cache = f32(cache, 21), out = Tensor::empty({T, hq, d}, DType::F32);
  Tensor want_k = k_cache.clone(), want_v = v_cache.clone(), want = Tensor::empty({T, hq, d}, DType::F32);
  Tensor q1 = q.clone(), k1 = k.clone();
  ops::rope_kv_write(q1, k1, v, positions, freq, 1.0f, q_norm, k_norm, 1e-6f, slots, want_k, want_v);
  ops::paged_attention(q1, want_k, want_v, tables, seqs, positions, 3, 0.5f, want);
  ops::rope_paged_attention(q.clone(), k.clone(), v, positions, freq, 1.0f, q_norm, k_norm, 1e-6f, slots, k_cache,
                            v_cache, tables, seqs, 3, 0.5f, out);
  EXPECT_EQ(out.to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(k_cache.to_vector<float>(), want_k.to_vector<float>());
  EXPECT_EQ(v_cache.to_vector<float>(), want_v.to_vector<float>());

  auto call = [&](const Tensor& qq, const Tensor& sq, const Tensor& qn) {
    ops::rope_paged_attention(qq.clone(), k.clone(), v, positions, freq, 1.0f, qn, k_norm, 1e-6f, slots, k_cache,
                              v_cache, tables, sq, 3, 0.5f, out);
  };
  expect_error([&] { call(q, Tensor::from_vector(std::vector<int32_t>{1, 1}, {T}, DType::I32), q_norm); },
               "rope_paged_attention: query_seq[1] = 1 repeats query_seq[0] (one token per sequence");
  expect_error([&] { call(q, seqs, Tensor()); }, "rope_paged_attention: q_norm and k_norm go together");
  expect_error([&] { call(f32({T, hq + 2, d}, 22), seqs, q_norm); }, "rope_paged_attention: out is");
}

// The stacked forms (kernels/stacked_ops.h) read one gemm's rows in place and give the numbers of
// their ops on the parts apart; bad calls name the op and what is wrong.
TEST(FusedDecodeOps, StackedFormsAreTheOpsOnTheParts) {
  const int64_t T = 3, hq = 4, hkv = 2, d = 8, blocks = 4, block_size = 4;
  const Tensor q = f32({T, hq, d}, 30), k = f32({T, hkv, d}, 31), v = f32({T, hkv, d}, 32);
  const Tensor positions = Tensor::from_vector(std::vector<int32_t>{0, 5, 2}, {T}, DType::I32);
  const Tensor slots = Tensor::from_vector(std::vector<int32_t>{0, 5, 14}, {T}, DType::I32);
  const Tensor tables = Tensor::from_vector(std::vector<int32_t>{0, 0, 2, 1, 3, 0}, {T, 2}, DType::I32);
  const Tensor seqs = Tensor::from_vector(std::vector<int32_t>{0, 1, 2}, {T}, DType::I32);
  const Tensor freq = inverse_frequencies(d, 1e4), q_norm = f32({d}, 33), k_norm = f32({d}, 34);
  const Shape cache{blocks, block_size, hkv, d};
  Tensor k_cache = f32(cache, 35), v_cache = f32(cache, 36), out = Tensor::empty({T, hq, d}, DType::F32);
  Tensor want_k = k_cache.clone(), want_v = v_cache.clone(), want = Tensor::empty({T, hq, d}, DType::F32);
  ops::rope_paged_attention(q.clone(), k.clone(), v, positions, freq, 1.0f, q_norm, k_norm, 1e-6f, slots, want_k,
                            want_v, tables, seqs, 0, 0.5f, want);
  const Tensor qkv = stacked_rows({q, k, v});
  ops::rope_paged_attention_stacked(qkv.clone(), positions, freq, 1.0f, q_norm, k_norm, 1e-6f, slots, k_cache, v_cache,
                                    tables, seqs, 0, 0.5f, out);
  EXPECT_EQ(out.to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(k_cache.to_vector<float>(), want_k.to_vector<float>());
  EXPECT_EQ(v_cache.to_vector<float>(), want_v.to_vector<float>());
  auto call = [&](const Tensor& rows, Tensor o) {
    ops::rope_paged_attention_stacked(rows.clone(), positions, freq, 1.0f, q_norm, k_norm, 1e-6f, slots, k_cache,
                                      v_cache, tables, seqs, 0, 0.5f, o);
  };
  expect_error([&] { call(stacked_rows({q, k}), out); }, "rope_paged_attention_stacked: qkv is");
  expect_error([&] { call(qkv, Tensor::empty({T, hq + 1, d}, DType::F32)); }, "rope_paged_attention_stacked");
  expect_error([&] { call(ops::cast(qkv, DType::BF16), out); }, "must have the dtype of the cache");

  const int64_t f = 7;  // gate/up rows of an odd width
  const Tensor gate = f32({T, f}, 37), up = f32({T, f}, 38);
  Tensor act = Tensor::empty({T, f}, DType::F32), want_act = Tensor::empty({T, f}, DType::F32);
  ops::swiglu_forward(want_act, gate, up);
  ops::swiglu_stacked(act, stacked_rows({gate.view({T, 1, f}), up.view({T, 1, f})}).view({T, 2 * f}));
  EXPECT_EQ(act.to_vector<float>(), want_act.to_vector<float>());
  expect_error([&] { ops::swiglu_stacked(act, gate); }, "swiglu_stacked: gate_up must be [T, 2F]");
  expect_error([&] { ops::swiglu_stacked(act, Tensor::empty({T, 2 * f}, DType::BF16)); }, "swiglu_stacked: out");
}
