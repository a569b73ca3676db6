// Several LoRA adapters served in one step (model/adapter_bank.h, ops::lora_batched): a batch that
// mixes two adapters of different ranks and targets with the base gives, row for row, what each
// gives alone (the base model; the adapter attached to the projections) and what its merged model
// gives (fp32 CPU, 1e-5); prefill and decode rows in any order, and a decode step padded to its
// bucket (as CUDA graphs run it: padding rows of no adapter). And the refusals at load.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "../../error_text.h"
#include "../../inference_models.h"
#include "core/error.h"
#include "kernels/ops.h"
#include "lora/adapter_bank_loader.h"
#include "lora/apply.h"
#include "lora/peft.h"
#include "model/kv_cache.h"

using namespace tessera;
using tessera::testing_util::error_of;
using namespace tessera::testing_util;
namespace fs = std::filesystem;

namespace {

// A PEFT adapter folder of random tensors (B too, so that it changes the model) for `config`.
std::string write_adapter(const std::string& dir, const ModelConfig& config, const lora::LoraOptions& options,
                          uint64_t seed) {
  fs::remove_all(dir);
  const lora::AdapterSpec spec = lora::resolve(options, config);
  uint64_t counter = 0;
  lora::write_peft_adapter(dir, config, spec, "tiny", [&](const ParamSpec& p) {
    Tensor t = Tensor::empty(p.shape, DType::F32);
    ops::fill_normal(t, seed, counter, 0.0f, 0.1f);
    counter += static_cast<uint64_t>(t.numel());
    return t;
  }, DType::F32);
  return dir;
}

ModelParams attached(const LoadedModel& base, const lora::PeftAdapter& adapter) {
  ModelParams p = base.params;
  lora::attach_adapter(p, base.config, adapter, DType::F32, Device::cpu());
  return p;
}

ModelParams merged(const LoadedModel& base, const lora::PeftAdapter& adapter) {
  ModelParams p = base.params;
  for (int64_t l = 0; l < base.config.num_hidden_layers; ++l)
    for (int q = 0; q < kProjections; ++q) {
      if (!adapter.spec.adapts(l, Projection(q))) continue;
      Linear& linear = projection(p.layers[l], Projection(q));
      linear.weight = lora::merge_lora(linear.weight, adapter.tensor(lora::lora_a_name(l, Projection(q))),
                                       adapter.tensor(lora::lora_b_name(l, Projection(q))), adapter.spec.scale());
    }
  return p;
}

std::shared_ptr<InferenceModel> model_of(const ModelConfig& config, ModelParams params) {
  return std::make_shared<InferenceModel>(config, std::make_shared<OwnedParams>(std::move(params)), Device::cpu(),
                                          DType::F32);
}

// Logits of a prefill of `prompt` then a decode step of each of `next`, for one sequence alone.
std::vector<std::vector<float>> alone(InferenceModel& model, const std::vector<int32_t>& prompt,
                                      const std::vector<int32_t>& next) {
  KvCache cache(model.config(), 16, 4, DType::F32, Device::cpu());
  BlockTable table;
  EXPECT_TRUE(cache.reserve(table, static_cast<int64_t>(prompt.size() + next.size())));
  std::vector<std::vector<float>> out;
  const int64_t V = model.config().vocab_size;
  StepInput in;
  for (size_t i = 0; i < prompt.size(); ++i) {
    in.ids.push_back(prompt[i]);
    in.seq.push_back(0);
    in.pos.push_back(static_cast<int32_t>(i));
  }
  in.block_tables = {&table};
  in.logit_rows = {static_cast<int64_t>(prompt.size()) - 1};
  Tensor logits = model.step(in, cache);
  out.emplace_back(logits.data_as<float>(), logits.data_as<float>() + V);
  for (size_t i = 0; i < next.size(); ++i) {
    StepInput d{{next[i]}, {0}, {static_cast<int32_t>(prompt.size() + i)}, {&table}, {0}, {}, {}};
    logits = model.step(d, cache);
    out.emplace_back(logits.data_as<float>(), logits.data_as<float>() + V);
  }
  return out;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

struct Fixture {
  CpuModel base = cpu_model("llama_gqa");
  std::string root = (fs::temp_directory_path() / ("tessera-adapters-" + std::to_string(::getpid()))).string();
  lora::PeftAdapter a, b;
  Fixture()
      : a(lora::read_peft_adapter(write_adapter(root + "/a", base.loaded.config, {.r = 4, .alpha = 8}, 11),
                                  base.loaded.config)),
        b(lora::read_peft_adapter(write_adapter(root + "/b", base.loaded.config,
                                                {.r = 2, .alpha = 6, .target_modules = {"q_proj", "v_proj", "down_proj"},
                                                 .layers = {1}},
                                                23),
                                  base.loaded.config)) {}
  ~Fixture() { fs::remove_all(root); }
};

}  // namespace

TEST(AdapterBatching, MixedBatchEqualsEachAloneAndTheMergedModels) {
  Fixture f;
  const ModelConfig& c = f.base.loaded.config;
  auto served = model_of(c, f.base.loaded.params);
  served->set_adapters(std::make_shared<AdapterBank>(
      lora::stack_adapters(c, {{"a", &f.a}, {"b", &f.b}}, DType::F32, Device::cpu())));
  // Sequences: b, the base, a, b again (another prompt); prompts of different lengths.
  const std::vector<int32_t> which{1, -1, 0, 1};
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < 4; ++s) prompts.push_back(tokens(5 + 2 * s, 7 + s, c.vocab_size));
  const std::vector<int32_t> next{3, 5, 7, 9}, then{11, 13, 15};  // `then`: sequences 0-2 only

  KvCache cache(c, 32, 4, DType::F32, Device::cpu());
  std::vector<BlockTable> tables(4);
  StepInput in;
  for (int s = 0; s < 4; ++s) {
    ASSERT_TRUE(cache.reserve(tables[s], static_cast<int64_t>(prompts[s].size()) + 2));
    for (size_t i = 0; i < prompts[s].size(); ++i) {
      in.ids.push_back(prompts[s][i]);
      in.seq.push_back(s);
      in.pos.push_back(static_cast<int32_t>(i));
    }
    in.logit_rows.push_back(static_cast<int64_t>(in.ids.size()) - 1);
    in.block_tables.push_back(&tables[s]);
  }
  in.adapter = which;
  const Tensor prefill = served->step(in, cache);
  // The decode step, its tokens in another order than the sequences: 2, 0, 3, 1.
  StepInput d;
  for (int s : {2, 0, 3, 1}) {
    d.ids.push_back(next[s]);
    d.seq.push_back(s);
    d.pos.push_back(static_cast<int32_t>(prompts[s].size()));
  }
  for (int s = 0; s < 4; ++s) d.block_tables.push_back(&tables[s]);
  d.logit_rows = {1, 3, 0, 2};  // sequences 0, 1, 2, 3
  d.adapter = which;
  const Tensor decode = served->step(d, cache);
  // A decode step of sequences 0-2 in order, padded to a bucket of 4 with a padding row.
  served->set_options({.cuda_graphs = false, .pad_decode = true});
  StepInput p;
  for (int s = 0; s < 3; ++s) {
    p.ids.push_back(then[s]);
    p.seq.push_back(s);
    p.pos.push_back(static_cast<int32_t>(prompts[s].size()) + 1);
    p.block_tables.push_back(&tables[s]);
    p.logit_rows.push_back(s);
    p.adapter.push_back(which[s]);
  }
  const Tensor padded = served->step(p, cache);

  const int64_t V = c.vocab_size;
  auto base = model_of(c, f.base.loaded.params);
  std::shared_ptr<InferenceModel> alone_model[2] = {model_of(c, attached(f.base.loaded, f.a)),
                                                    model_of(c, attached(f.base.loaded, f.b))};
  std::shared_ptr<InferenceModel> merged_model[2] = {model_of(c, merged(f.base.loaded, f.a)),
                                                     model_of(c, merged(f.base.loaded, f.b))};
  for (int s = 0; s < 4; ++s) {
    SCOPED_TRACE("sequence " + std::to_string(s));
    const std::vector<float> got_prefill(prefill.data_as<float>() + s * V, prefill.data_as<float>() + (s + 1) * V);
    const std::vector<float> got_decode(decode.data_as<float>() + s * V, decode.data_as<float>() + (s + 1) * V);
    InferenceModel& one = which[s] < 0 ? *base : *alone_model[which[s]];
    std::vector<int32_t> tokens_in{next[s]};
    if (s < 3) tokens_in.push_back(then[s]);
    const auto want = alone(one, prompts[s], tokens_in);
    EXPECT_LT(max_diff(got_prefill, want[0]), 1e-5);
    EXPECT_LT(max_diff(got_decode, want[1]), 1e-5);
    std::vector<float> got_padded;
    if (s < 3) {
      got_padded.assign(padded.data_as<float>() + s * V, padded.data_as<float>() + (s + 1) * V);
      EXPECT_LT(max_diff(got_padded, want[2]), 1e-5);
    }
    if (which[s] < 0) continue;
    const auto want_merged = alone(*merged_model[which[s]], prompts[s], tokens_in);
    EXPECT_LT(max_diff(got_prefill, want_merged[0]), 1e-5);
    EXPECT_LT(max_diff(got_decode, want_merged[1]), 1e-5);
    if (s < 3) EXPECT_LT(max_diff(got_padded, want_merged[2]), 1e-5);
    // And the adapter does change the model (a test that could not fail would be no test).
    const auto plain = alone(*base, prompts[s], tokens_in);
    EXPECT_GT(max_diff(got_decode, plain[1]), 1e-3);
  }
}

TEST(AdapterBatching, RefusesAdaptersThatCannotBeBatched) {
  Fixture f;
  const ModelConfig& c = f.base.loaded.config;
  // modules_to_save replaces whole tensors: one row of a batch cannot have its own.
  const std::string saved = write_adapter(f.root + "/saved", c, {.r = 2, .modules_to_save = {"embed_tokens"}}, 5);
  EXPECT_EQ(error_of([&] { lora::load_adapter_bank(c, {{"a", f.root + "/a"}, {"emb", saved}}, DType::F32, Device::cpu()); }),
            "adapter 'emb': it trains embed_tokens whole (modules_to_save), which cannot be served batched with other "
            "adapters; merge it into a model of its own (tessera export) instead");
  EXPECT_EQ(error_of([&] { lora::stack_adapters(c, {{"a", &f.a}, {"a", &f.b}}, DType::F32, Device::cpu()); }),
            "adapter 'a' is given twice");
  // An adapter trained for another shape of model is refused by name at load.
  CpuModel other = cpu_model("qwen2_bias_tied");
  const std::string foreign = write_adapter(f.root + "/foreign", other.loaded.config, {.r = 2}, 9);
  const std::string e = error_of([&] { lora::load_adapter_bank(c, {{"foreign", foreign}}, DType::F32, Device::cpu()); });
  EXPECT_NE(e.find("adapter 'foreign' (" + foreign + ")"), std::string::npos) << e;
  // And a request for an adapter that is not loaded.
  AdapterBank bank = lora::stack_adapters(c, {{"a", &f.a}}, DType::F32, Device::cpu());
  EXPECT_EQ(bank.index(""), -1);
  EXPECT_EQ(bank.index("a"), 0);
  EXPECT_EQ(error_of([&] { bank.index("zzz"); }), "adapter 'zzz' is not loaded");
}
