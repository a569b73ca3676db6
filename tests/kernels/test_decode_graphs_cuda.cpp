// Decode steps replayed from CUDA graphs against the same steps run eagerly, on a small random
// bf16 Llama on the GPU: a graph replays exactly the padded eager step (same kernels, same
// shapes), so every greedy and seeded-sampled token is equal, the device's draws included (their
// parameters travel in the graph's inputs: no capture per step); graphs were really captured and
// replayed; and the unpadded eager engine agrees on the prompt's first token.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>

#include "engine/inference/generator.h"
#include "engine/model_loader.h"
#include "kernels/ops.h"
#include "model/inference_model.h"
#include "model/model_config_params.h"
#include "model/stacked_projections.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

// The first `count` of five requests (5: a decode bucket of 8 rows; 3: of 4, the gemv's).
std::vector<inference::Completion> generate(const std::shared_ptr<InferenceModel>& model, int count = 5) {
  inference::GeneratorOptions options;
  options.max_batch_size = 8;
  options.max_seq_len = 160;
  options.kv_cache_blocks = 96;
  options.worker_thread = false;
  inference::Generator generator(model, nullptr, options);
  std::vector<inference::Request> requests;
  const int64_t lengths[] = {3, 40, 17, 1, 70};  // 5 sequences: bucket 8, tables 16 blocks wide
  for (int r = 0; r < count; ++r) {
    inference::Request q;
    for (int64_t t = 0; t < lengths[r]; ++t) q.prompt.push_back(static_cast<int32_t>((r * 131 + t * 17) % 1000));
    q.max_new_tokens = 24;
    q.ignore_eos = true;
    // Rows 2 and 4 are drawn on the device inside the graph (their counters change every replay),
    // row 1 on the host from its full logits (it asks for top logprobs); the others are greedy.
    q.sampling.temperature = r == 2 ? 0.8 : r == 4 ? 1.0 : r == 1 ? 0.7 : 0.0;
    if (r == 4) q.sampling.top_k = 50, q.sampling.top_p = 0.9, q.sampling.min_p = 0.02;
    if (r == 1) q.top_logprobs = 2;
    q.sampling.seed = 11 + r;
    requests.push_back(q);
  }
  return inference::generate_all(generator, requests);
}

const ModelConfig model_config = ModelConfig::from_json(
    nlohmann::json{{"model_type", "llama"}, {"hidden_size", 256}, {"intermediate_size", 512},
                   {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                   {"vocab_size", 1000}, {"max_position_embeddings", 256}, {"tie_word_embeddings", true}},
    "graphs");

ModelParams random_params(uint64_t seed) {
  ModelParams params = make_params(model_config, DType::BF16, gpu, false);
  uint64_t offset = 0;
  for_each_param(model_config, params, [&](const std::string&, Tensor& t) {
    ops::fill_normal(t, seed, offset, 0.0f, 0.08f);
    offset += t.numel();
  });
  return params;
}

std::shared_ptr<OwnedParams> random_weights(uint64_t seed) { return std::make_shared<OwnedParams>(random_params(seed)); }

// The same weights with every projection packed under `scheme` (as a quantized checkpoint loads).
std::shared_ptr<OwnedParams> packed_weights(uint64_t seed, QuantScheme scheme) {
  ModelParams params = random_params(seed);
  for (LayerParams& layer : params.layers)
    for (int p = 0; p < kProjections; ++p) {
      Linear& l = projection(layer, Projection(p));
      const PackedTensor w = PackedTensor::empty(resolve_quant_spec({scheme}, l.weight.shape()), l.weight.shape(), gpu);
      ops::quantize(w, l.weight);
      set_packed_base(l, w, gpu);
    }
  return std::make_shared<OwnedParams>(params);
}

// The first `count` requests decoded with the fused decode ops eagerly, without them, and with them
// from graphs (all padded to the decode buckets).
struct ThreeWays {
  std::vector<inference::Completion> fused, plain, graphs;
};
ThreeWays decode_three_ways(const std::shared_ptr<OwnedParams>& source, int count) {
  auto model = [&](bool fused, bool graphs) {
    return std::make_shared<InferenceModel>(
        model_config, source, gpu, DType::BF16,
        InferenceOptions{.cuda_graphs = graphs, .pad_decode = true, .fused_decode = fused});
  };
  return {generate(model(true, false), count), generate(model(false, false), count), generate(model(true, true), count)};
}

// check(runs, r) for each request r of 3 (a decode bucket of 4 rows: the gemvs') and of 5 (8 rows),
// once the fused eager run has every request's 24 tokens.
template <typename Check>
void each_request(const std::shared_ptr<OwnedParams>& source, Check check) {
  for (int count : {3, 5}) {
    SCOPED_TRACE(::testing::Message() << count << " requests");
    const ThreeWays runs = decode_three_ways(source, count);
    ASSERT_EQ(runs.fused.size(), size_t(count));
    for (size_t r = 0; r < runs.fused.size(); ++r) {
      ASSERT_EQ(runs.fused[r].ids.size(), 24u) << "request " << r << ": " << runs.fused[r].error;
      check(runs, r);
    }
  }
}

}  // namespace

TEST(CudaDecodeGraphs, ReplaysEqualThePaddedEagerSteps) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  auto source = random_weights(seed);
  auto graphs = std::make_shared<InferenceModel>(model_config, source, gpu, DType::BF16, InferenceOptions{});
  auto padded = std::make_shared<InferenceModel>(model_config, source, gpu, DType::BF16,
                                                 InferenceOptions{.cuda_graphs = false, .pad_decode = true});
  auto plain = std::make_shared<InferenceModel>(model_config, source, gpu, DType::BF16,
                                                InferenceOptions{.cuda_graphs = false});
  const auto a = generate(graphs), b = generate(padded), c = generate(plain);
  EXPECT_GE(graphs->graphs_captured(), 1);
  EXPECT_LE(graphs->graphs_captured(), 8) << "a capture per bucket and width, not per step";
  EXPECT_GT(graphs->timings().graph_replays, 10);
  EXPECT_GT(graphs->timings().gpu_ms, 0.0);
  ASSERT_EQ(a.size(), 5u);
  for (size_t r = 0; r < a.size(); ++r) {
    ASSERT_EQ(a[r].ids.size(), 24u) << "request " << r << ": " << a[r].error;
    EXPECT_EQ(a[r].ids, b[r].ids) << "request " << r;
    EXPECT_EQ(a[r].ids[0], c[r].ids[0]) << "request " << r;
    for (size_t t = 0; t < a[r].logprobs.size(); ++t) EXPECT_EQ(a[r].logprobs[t], b[r].logprobs[t]);
  }
}

// The fused decode ops (InferenceOptions::fused_decode) against the plain ops, eagerly and padded
// as graphs run: without Qwen3's norms they do the same arithmetic, so every greedy and sampled
// token and logprob is equal, for decode steps the gemv takes (3 sequences: 4 rows) and those it
// leaves to cuBLASLt (5: 8 rows); and with graphs the fused steps replay to the same tokens.
TEST(CudaDecodeGraphs, FusedDecodeOpsGiveThePlainOpsTokens) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  each_request(random_weights(seed), [](const ThreeWays& runs, size_t r) {
    EXPECT_EQ(runs.fused[r].ids, runs.plain[r].ids) << "request " << r;
    EXPECT_EQ(runs.fused[r].logprobs, runs.plain[r].logprobs) << "request " << r;
    EXPECT_EQ(runs.graphs[r].ids, runs.fused[r].ids) << "request " << r;
  });
}

// With the norms and residual adds folded into the gemv's launches (InferenceOptions::
// norm_prologue_rows 4, decode steps of up to 4 rows) the arithmetic is the same: every token and
// logprob equals the unfolded fused ops', eagerly (padded) and replayed from graphs, for decode
// steps the gemv takes (3 sequences) and those it leaves to cuBLASLt (5: nothing folds).
TEST(CudaDecodeGraphs, FoldedNormsGiveTheUnfoldedTokens) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  auto source = random_weights(seed);
  auto model = [&](bool folded, bool graphs) {
    return std::make_shared<InferenceModel>(
        model_config, source, gpu, DType::BF16,
        InferenceOptions{.cuda_graphs = graphs, .pad_decode = true, .fused_decode = true, .norm_prologue_rows = folded ? 4 : 0});
  };
  for (int count : {3, 5}) {
    SCOPED_TRACE(::testing::Message() << count << " requests");
    const auto unfolded = generate(model(false, false), count), folded = generate(model(true, false), count);
    const auto folded_graphs = generate(model(true, true), count);
    ASSERT_EQ(folded.size(), size_t(count));
    for (size_t r = 0; r < folded.size(); ++r) {
      ASSERT_EQ(folded[r].ids.size(), 24u) << "request " << r << ": " << folded[r].error;
      EXPECT_EQ(folded[r].ids, unfolded[r].ids) << "request " << r;
      EXPECT_EQ(folded[r].logprobs, unfolded[r].logprobs) << "request " << r;
      EXPECT_EQ(folded_graphs[r].ids, unfolded[r].ids) << "request " << r;
      EXPECT_EQ(folded_graphs[r].logprobs, unfolded[r].logprobs) << "request " << r;
    }
  }
}

// With the stacked projections (InferenceOptions::stacked_rows 1: q/k/v in one gemm whose rows
// the attention reads in place, gate/up in one gemm and the SwiGLU of its rows) graphs replay the
// eager steps exactly, and the greedy requests' first tokens are the unstacked engine's with
// their log-probabilities to 1e-2 (cuBLASLt may sum a wider product in another order), for
// decode steps of 4 rows and of 8.
TEST(CudaDecodeGraphs, StackedProjectionsGiveTheUnstackedTokens) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  auto source = random_weights(seed);
  const LayerParams& layer = source->acquire(UnitId::layer_unit(0)).layers[0];
  const Tensor* qkv[] = {&layer.q_proj.weight, &layer.k_proj.weight, &layer.v_proj.weight};
  ASSERT_TRUE(stacked_view(qkv).defined()) << "OwnedParams stacks q/k/v";
  auto model = [&](int stacked_rows, bool graphs) {
    return std::make_shared<InferenceModel>(
        model_config, source, gpu, DType::BF16,
        InferenceOptions{.cuda_graphs = graphs, .pad_decode = true, .norm_prologue_rows = 0, .stacked_rows = stacked_rows});
  };
  for (int count : {3, 5}) {
    SCOPED_TRACE(::testing::Message() << count << " requests");
    const auto plain = generate(model(0, false), count), stacked = generate(model(1, false), count);
    const auto stacked_graphs = generate(model(1, true), count);
    ASSERT_EQ(stacked.size(), size_t(count));
    for (size_t r = 0; r < stacked.size(); ++r) {
      ASSERT_EQ(stacked[r].ids.size(), 24u) << "request " << r << ": " << stacked[r].error;
      EXPECT_EQ(stacked_graphs[r].ids, stacked[r].ids) << "request " << r;
      EXPECT_EQ(stacked_graphs[r].logprobs, stacked[r].logprobs) << "request " << r;
      if (r == 0 || r == 3) {  // greedy
        EXPECT_EQ(stacked[r].ids[0], plain[r].ids[0]) << "request " << r;
        EXPECT_NEAR(stacked[r].logprobs[0], plain[r].logprobs[0], 1e-2) << "request " << r;
      }
    }
  }
}

// InferenceOptions::profile_ops: the steps run eagerly and give the plain eager engine's tokens,
// and each op family's device time is there, none negative, together within the steps' time;
// the fused decode ops are families of their own, and with the norms folded (decode steps; the
// prompts' step has more than 4 rows) so are the projections that norm or add.
TEST(CudaDecodeGraphs, ProfiledStepsTimeEachOpFamily) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  auto source = random_weights(seed);
  const std::vector<const char*> plain_ops = {"embedding", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                              "up_proj", "down_proj", "norm_rope", "kv_write", "attention",
                                              "norms_swiglu", "final_norm", "lm_head", "sample"};
  const std::vector<const char*> fused_ops = {"embedding", "qkv_proj", "rope_kv_write", "o_proj",
                                              "gate_up_swiglu", "down_proj", "norm_rope", "attention",
                                              "norms_swiglu", "final_norm", "lm_head", "sample"};
  std::vector<const char*> folded_ops = fused_ops;
  for (const char* op : {"norm_qkv_proj", "o_proj_add", "norm_gate_up_swiglu", "down_proj_add"}) folded_ops.push_back(op);
  for (const int mode : {0, 1, 2}) {  // plain, fused, fused with the norms folded
    SCOPED_TRACE(::testing::Message() << "mode " << mode);
    const InferenceOptions options{.fused_decode = mode > 0, .norm_prologue_rows = mode == 2 ? 4 : 0};
    InferenceOptions profiling = options, eager = options;
    profiling.profile_ops = true;
    eager.cuda_graphs = false;
    auto profiled = std::make_shared<InferenceModel>(model_config, source, gpu, DType::BF16, profiling);
    auto plain = std::make_shared<InferenceModel>(model_config, source, gpu, DType::BF16, eager);
    const auto a = generate(profiled, 3), b = generate(plain, 3);
    ASSERT_EQ(a.size(), b.size());
    for (size_t r = 0; r < a.size(); ++r) EXPECT_EQ(a[r].ids, b[r].ids) << "request " << r;
    const StepTimes& t = profiled->timings();
    EXPECT_EQ(t.graph_replays, 0);
    const std::vector<const char*>& ops = mode == 0 ? plain_ops : mode == 1 ? fused_ops : folded_ops;
    double sum = 0;
    for (const char* op : ops) {
      ASSERT_TRUE(t.op_ms.count(op)) << op;
      EXPECT_GT(t.op_ms.at(op), -0.01 * t.gpu_ms) << op;  // a family less the ones timed inside it
      sum += t.op_ms.at(op);
    }
    EXPECT_EQ(t.op_ms.size(), ops.size());
    EXPECT_GT(t.op_ms.at("lm_head"), 0.0);
    EXPECT_GT(sum, 0.3 * t.gpu_ms);
    EXPECT_LT(sum, 1.01 * t.gpu_ms);
  }
}

// A packed model (every projection int4 g32 or int8) decodes through the packed fused ops (q/k/v in
// one launch, gate/up with the SwiGLU), overlapping their predecessors (TESSERA_PDL, on by
// default): replayed graphs give the eager steps' tokens exactly, and the engine without the fused
// ops (one gemm_packed per projection, summing in another order) the same greedy first tokens with
// their log-probabilities to 1e-2, under the default kernels, the streaming one and rows.
TEST(CudaDecodeGraphs, PackedModelsDecodeThroughTheirFusedOps) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (QuantScheme scheme : {QuantScheme::Int4, QuantScheme::Int8})
    for (const char* variant : {"auto", "stream", "rows"}) {
      SCOPED_TRACE(::testing::Message() << quant_scheme_name(scheme) << " TESSERA_PACKED_GEMV=" << variant);
      setenv("TESSERA_PACKED_GEMV", variant, 1);
      each_request(packed_weights(seed, scheme), [](const ThreeWays& runs, size_t r) {
        EXPECT_EQ(runs.graphs[r].ids, runs.fused[r].ids) << "request " << r;
        EXPECT_EQ(runs.graphs[r].logprobs, runs.fused[r].logprobs) << "request " << r;
        if (r == 0 || r == 3) {  // greedy
          EXPECT_EQ(runs.fused[r].ids[0], runs.plain[r].ids[0]) << "request " << r;
          EXPECT_NEAR(runs.fused[r].logprobs[0], runs.plain[r].logprobs[0], 1e-2) << "request " << r;
        }
      });
    }
  unsetenv("TESSERA_PACKED_GEMV");
}
