// The model step over the paged KV cache against full forwards without a cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "../../inference_models.h"
#include "model/kv_cache.h"
#include "model/stacked_projections.h"
#include "quant/packed.h"

using namespace tessera;
using namespace tessera::testing_util;

// Greedy decoding with the cache gives, token by token, the argmax of a full forward over
// everything so far, and the same logits (fp32 CPU: to 1e-4), for every parity architecture.
TEST(InferenceModel, GreedyWithCacheEqualsRepeatedFullForwards) {
  for (const std::string& name : parity_model_names()) {
    SCOPED_TRACE(name);
    CpuModel m = cpu_model(name);
    const int64_t V = m.loaded.config.vocab_size;
    KvCache cache(m.loaded.config, 16, 4, DType::F32, Device::cpu());
    const std::vector<int32_t> prompt = tokens(7, 3, V);
    const auto paged = run_paged(*m.model, cache, prompt, 3, 10);
    std::vector<int32_t> seq = prompt;
    for (size_t step = 0; step < paged.size(); ++step) {
      const std::vector<float> full = full_forward_next_logits(m.loaded, seq);
      float worst = 0;
      for (int64_t v = 0; v < V; ++v) worst = std::max(worst, std::abs(full[v] - paged[step][v]));
      EXPECT_LT(worst, 1e-4f) << "step " << step;
      const int32_t want = argmax(full.data(), V);
      ASSERT_EQ(argmax(paged[step].data(), V), want) << "step " << step;
      seq.push_back(want);
    }
    EXPECT_EQ(cache.free_blocks(), 16);
  }
}

// On the CPU the fused decode ops (InferenceOptions::fused_decode), with the norms and residual
// adds folded into the projections of steps of up to 4 rows (norm_prologue_rows 4) or not, are the plain
// ops they stand for: prefill chunks (of 4 rows: folded) and decode steps give the same logits
// exactly, for every parity architecture (Qwen2's q/k/v biases, Qwen3's q/k norms).
TEST(InferenceModel, FusedDecodeOpsGiveThePlainOpsLogits) {
  for (const std::string& name : parity_model_names()) {
    SCOPED_TRACE(name);
    CpuModel m = cpu_model(name);
    const auto source = std::make_shared<OwnedParams>(m.loaded.params);
    const std::vector<int32_t> prompt = tokens(9, 5, m.loaded.config.vocab_size);
    const auto logits = [&](bool fused, bool folded) {
      InferenceModel model(m.loaded.config, source, Device::cpu(), DType::F32,
                           InferenceOptions{.fused_decode = fused, .norm_prologue_rows = folded ? 4 : 0});
      KvCache cache(m.loaded.config, 16, 4, DType::F32, Device::cpu());
      return run_paged(model, cache, prompt, 4, 6);
    };
    const auto plain = logits(false, false), folded = logits(true, true);
    ASSERT_EQ(folded.size(), 6u);
    EXPECT_EQ(folded, plain);
    EXPECT_EQ(logits(true, false), plain);
  }
}

// OwnedParams stacks each layer's q/k/v (with their biases) and gate/up, the Linears views into
// one buffer holding the weights as loaded; steps of at least stacked_rows rows multiply them in
// one gemm (decode steps' attention reading the q/k/v rows in place, ops::rope_paged_attention_stacked)
// and give the plain ops' logits exactly, for every parity architecture.
TEST(InferenceModel, StackedProjectionsGiveThePlainOpsLogits) {
  for (const std::string& name : parity_model_names()) {
    SCOPED_TRACE(name);
    CpuModel m = cpu_model(name);
    const auto source = std::make_shared<OwnedParams>(m.loaded.params);
    const LayerParams& loaded = m.loaded.params.layers[0];
    const LayerParams& held = source->acquire(UnitId::layer_unit(0)).layers[0];
    const Tensor* qkv[] = {&held.q_proj.weight, &held.k_proj.weight, &held.v_proj.weight};
    const Tensor* gate_up[] = {&held.gate_proj.weight, &held.up_proj.weight};
    ASSERT_TRUE(stacked_view(qkv).defined());
    ASSERT_TRUE(stacked_view(gate_up).defined());
    const Tensor* biases[] = {&held.q_proj.bias, &held.k_proj.bias, &held.v_proj.bias};
    EXPECT_EQ(stacked_view(biases).defined(), loaded.q_proj.bias.defined());
    EXPECT_EQ(held.k_proj.weight.to_vector<float>(), loaded.k_proj.weight.to_vector<float>());
    EXPECT_EQ(held.up_proj.weight.to_vector<float>(), loaded.up_proj.weight.to_vector<float>());
    const std::vector<int32_t> prompt = tokens(9, 5, m.loaded.config.vocab_size);
    const auto logits = [&](bool fused, int stacked_rows) {
      InferenceModel model(m.loaded.config, source, Device::cpu(), DType::F32,
                           InferenceOptions{.fused_decode = fused, .norm_prologue_rows = 0, .stacked_rows = stacked_rows});
      KvCache cache(m.loaded.config, 16, 4, DType::F32, Device::cpu());
      return run_paged(model, cache, prompt, 4, 6);
    };
    const auto plain = logits(false, 0), stacked = logits(true, 1);
    ASSERT_EQ(stacked.size(), 6u);
    EXPECT_EQ(stacked, plain);
    EXPECT_EQ(logits(true, 4), plain);  // prefill chunks stacked, decode steps not
  }
}

// Blocks handed out in a scrambled order (a fragmented pool) give the same logits as blocks in
// order; and prefill chunking does not change them.
TEST(InferenceModel, FragmentedPagedCacheEqualsContiguous) {
  CpuModel m = cpu_model("qwen3_qknorm_bf16");
  const ModelConfig& c = m.loaded.config;
  const std::vector<int32_t> prompt = tokens(13, 5, c.vocab_size);
  KvCache contiguous(c, 12, 4, DType::F32, Device::cpu());
  KvCache fragmented(c, 12, 4, DType::F32, Device::cpu());
  fragmented.set_free_order({9, 2, 11, 0, 7, 4, 10, 1, 6, 3, 8, 5});
  const auto a = run_paged(*m.model, contiguous, prompt, 64, 8);
  const auto b = run_paged(*m.model, fragmented, prompt, 5, 8);
  ASSERT_EQ(a.size(), b.size());
  for (size_t s = 0; s < a.size(); ++s)
    for (size_t v = 0; v < a[s].size(); ++v) ASSERT_NEAR(a[s][v], b[s][v], 1e-5) << "step " << s << " logit " << v;
}

// Two sequences in one step (one prefilling, one decoding) get the logits each gets alone.
TEST(InferenceModel, PackedSequencesDoNotSeeEachOther) {
  CpuModel m = cpu_model("llama_gqa");
  const ModelConfig& c = m.loaded.config;
  const int64_t V = c.vocab_size;
  const std::vector<int32_t> a = tokens(9, 1, V), b = tokens(4, 2, V);
  KvCache cache(c, 16, 4, DType::F32, Device::cpu());
  BlockTable ta, tb;
  ASSERT_TRUE(cache.reserve(tb, 5));
  ASSERT_TRUE(cache.reserve(ta, 9));
  // b's first 4 tokens first, alone.
  StepInput first;
  for (int32_t p = 0; p < 4; ++p) first.ids.push_back(b[p]), first.seq.push_back(0), first.pos.push_back(p);
  first.block_tables = {&tb};
  first.logit_rows = {3};
  const int32_t next_b = argmax(m.model->step(first, cache).data_as<float>(), V);
  // Then a's whole prompt with b's fifth token, packed in one step.
  StepInput both;
  for (int32_t p = 0; p < 9; ++p) both.ids.push_back(a[p]), both.seq.push_back(1), both.pos.push_back(p);
  both.ids.push_back(next_b), both.seq.push_back(0), both.pos.push_back(4);
  both.block_tables = {&tb, &ta};
  both.logit_rows = {9, 8};
  const Tensor logits = m.model->step(both, cache);
  std::vector<int32_t> bb = b;
  bb.push_back(next_b);
  const std::vector<float> want_b = full_forward_next_logits(m.loaded, bb), want_a = full_forward_next_logits(m.loaded, a);
  for (int64_t v = 0; v < V; ++v) {
    EXPECT_NEAR(logits.data_as<float>()[v], want_b[v], 1e-4);
    EXPECT_NEAR(logits.data_as<float>()[V + v], want_a[v], 1e-4);
  }
}

TEST(KvCache, ReservesReleasesAndRefusesWhenFull) {
  CpuModel m = cpu_model("llama_gqa");
  KvCache cache(m.loaded.config, 5, 4, DType::F32, Device::cpu());
  EXPECT_EQ(KvCache::block_bytes(m.loaded.config, 4, DType::F32), 2 * 2 * 4 * 1 * 64 * 4);
  BlockTable a, b;
  EXPECT_TRUE(cache.reserve(a, 9));  // 3 blocks
  EXPECT_EQ(a, (BlockTable{0, 1, 2}));
  EXPECT_TRUE(cache.reserve(a, 12));  // still 3
  EXPECT_EQ(cache.free_blocks(), 2);
  EXPECT_FALSE(cache.reserve(b, 9));
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(cache.reserve(b, 8));
  EXPECT_EQ(cache.free_blocks(), 0);
  cache.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(cache.free_blocks(), 3);
  EXPECT_THROW(cache.set_free_order({0, 1, 7}), Error);
}

// quantize_lm_head: the logits' product runs against the packed head (the embedding when tied),
// and gives the logits of the same model whose (untied) lm_head is that packed head's
// dequantized weights; the embedding lookup of a tied model is untouched.
TEST(InferenceModel, PackedLmHeadGivesTheLogitsOfItsDequantizedWeights) {
  for (const std::string name : {"llama_gqa", "qwen2_bias_tied"}) {
    for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int4, 32, true}, QuantSpec{QuantScheme::Q8_0}}) {
      SCOPED_TRACE(::testing::Message() << name << " " << quant_scheme_name(spec.scheme));
      CpuModel m = cpu_model(name);
      const ModelConfig& c = m.loaded.config;
      m.model->quantize_lm_head(spec);
      ASSERT_NE(m.model->packed_lm_head(), nullptr);
      ModelConfig untied = c;
      untied.tie_word_embeddings = false;
      ModelParams params = m.loaded.params;
      params.lm_head = quant::dequantize(*m.model->packed_lm_head(), DType::F32);
      InferenceModel dense(untied, std::make_shared<OwnedParams>(params), Device::cpu(), DType::F32);
      const std::vector<int32_t> prompt = tokens(6, 4, c.vocab_size);
      KvCache a(c, 8, 4, DType::F32, Device::cpu()), b(c, 8, 4, DType::F32, Device::cpu());
      const auto got = run_paged(*m.model, a, prompt, 6, 3), want = run_paged(dense, b, prompt, 6, 3);
      ASSERT_EQ(got.size(), want.size());
      for (size_t s = 0; s < got.size(); ++s)
        for (size_t v = 0; v < got[s].size(); ++v) ASSERT_NEAR(got[s][v], want[s][v], 1e-5) << "step " << s << " logit " << v;
    }
  }
}
