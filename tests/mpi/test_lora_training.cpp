// LoRA through the ZeRO store: adapters on a frozen base train to one rank's losses (1e-4) on
// every stage, with gradient accumulation, activation checkpointing and offload, with
// counter-based dropout drawing the same masks however the global batch is split. QLoRA (a packed
// nf4/int8 base) trains exactly as LoRA on the base dequantize(quantize(W)) does, on every stage,
// resumes from its checkpoints, and exports merged into that dequantized base.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/memory.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/state_file.h"
#include "engine/export.h"
#include "engine/job_params.h"
#include "engine/model_loader.h"
#include "lora/adapter.h"
#include "lora/apply.h"
#include "lora/peft.h"
#include "io/safetensors.h"
#include "tiny_training.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

lora::LoraOptions options(bool tied, double dropout) {
  lora::LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.dropout = dropout;
  o.modules_to_save = {tied ? "embed_tokens" : "lm_head"};
  return o;
}

Trained lora_run(bool tied, double dropout, Recompute recompute = Recompute::none) {
  const lora::LoraOptions o = options(tied, dropout);
  const lora::AdapterSpec spec = lora::resolve(o, tiny_config(tied));
  return {.params = [o](const ModelConfig& c) { return lora::lora_parameters(c, lora::resolve(o, c)); },
          .lora_scale = spec.scale(), .dropout = static_cast<float>(spec.dropout), .recompute = recompute};
}

// lora_run's adapters over a base whose projection weights are packed under `quant`.
Trained qlora_run(bool tied, const std::string& quant, Recompute recompute = Recompute::none) {
  lora::LoraOptions o = options(tied, 0.1);
  o.base_quant = quant;
  Trained t = lora_run(tied, 0.1, recompute);
  t.params = [o](const ModelConfig& c) { return lora::lora_parameters(c, lora::resolve(o, c)); };
  return t;
}

// The starting values that make a LoRA run's base what a QLoRA run's holds: every packed weight
// initialised by its rule (seed 5, std 0.1, its Philox counters), then dequantize(quantize(.)).
ZeroStore::ParamValues dequantized_base(const std::vector<ParamSpec>& qlora_params, uint64_t seed, float std) {
  std::map<std::string, std::pair<QuantSpec, int64_t>> packed;
  int64_t offset = 0;
  for (const ParamSpec& p : qlora_params) {
    if (p.quant) packed.emplace(p.name, std::pair{*p.quant, offset});
    offset += shape_numel(p.shape);
  }
  return [packed, seed, std](const ParamSpec& p) {
    const auto it = packed.find(p.name);
    if (it == packed.end()) return Tensor();
    Tensor w = Tensor::empty(p.shape, DType::F32);
    init_param(p, w, seed, static_cast<uint64_t>(it->second.second), std);
    ops::fake_quantize(w, w, it->second.first);
    return w;
  };
}

}  // namespace

class LoraTraining : public ::testing::TestWithParam<bool> {};

TEST_P(LoraTraining, QloraEqualsLoraOnItsDequantizedBaseOnEveryStage) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  const std::vector<double> plain = train(*self, zero(0), kGlobalBatch, tied, lora_run(tied, 0.1));
  for (const std::string quant : {"nf4", "int8"}) {
    const std::vector<double> qlora = train(*self, zero(0), kGlobalBatch, tied, qlora_run(tied, quant));
    Trained on_dequantized = lora_run(tied, 0.1);
    on_dequantized.values = dequantized_base(qlora_run(tied, quant).params(tiny_config(tied)), 5, 0.1f);
    const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied, on_dequantized);
    ASSERT_EQ(qlora.size(), reference.size());
    for (size_t i = 0; i < reference.size(); ++i)
      EXPECT_NEAR(qlora[i], reference[i], 1e-5 * std::abs(reference[i])) << quant << " step " << i + 1;
    EXPECT_GT(std::abs(qlora[0] - plain[0]), 1e-5) << quant << ": the base was not quantized";
    for (int stage = 0; stage <= 3; ++stage)
      for (int64_t mbs : {int64_t{1}, per_rank})
        expect_same_curve(train(*world, zero(stage), mbs, tied, qlora_run(tied, quant)), qlora,
                          fmt::format("QLoRA {}, stage {}, micro-batch {}", quant, stage, mbs));
    expect_same_curve(train(*world, zero(3), 1, tied, qlora_run(tied, quant, Recompute::layers)), qlora,
                      "QLoRA " + quant + ", activation checkpointing");
    ZeroOptions fused = zero(3);
    fused.packed_matmul = PackedMatmul::gemm_packed;
    expect_same_curve(train(*world, fused, per_rank, tied, qlora_run(tied, quant)), qlora,
                      "QLoRA " + quant + ", packed_matmul gemm_packed");
    ZeroOptions offloaded = zero(3, 1, 33);
    offloaded.offload_optimizer = OffloadTo::cpu;
    offloaded.offload_params = OffloadTo::nvme;
    offloaded.nvme_params = test_swap();
    expect_same_curve(train(*world, offloaded, per_rank, tied, qlora_run(tied, quant)), qlora,
                      "QLoRA " + quant + ", optimizer on the CPU, parameters (the packed base too) on disk");
  }
}

TEST_P(LoraTraining, EveryStageSplitAndOffloadMatchesOneRank) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied, lora_run(tied, 0.1));
  // B starts at zero: the first loss is the base model's; dropout then changes the curve.
  const std::vector<double> no_dropout = train(*self, zero(0), kGlobalBatch, tied, lora_run(tied, 0.0));
  const std::vector<double> full = train(*self, zero(0), kGlobalBatch, tied);
  EXPECT_NEAR(reference[0], full[0], 1e-6);
  EXPECT_GT(std::abs(reference.back() - no_dropout.back()), 1e-6) << "dropout did nothing";
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (int stage = 0; stage <= 3; ++stage)
    for (int64_t mbs : {int64_t{1}, per_rank})
      expect_same_curve(train(*world, zero(stage), mbs, tied, lora_run(tied, 0.1)), reference,
                        fmt::format("LoRA, stage {}, micro-batch {}", stage, mbs));
  expect_same_curve(train(*world, zero(3), 1, tied, lora_run(tied, 0.1, Recompute::layers)), reference,
                    "LoRA, activation checkpointing");
  expect_same_curve(train(*world, zero(3), 1, tied, lora_run(tied, 0.1, Recompute::norms_swiglu)), reference,
                    "LoRA, norms and SwiGLU recomputed");
  ZeroOptions offloaded = zero(3, 1, 33);
  offloaded.offload_optimizer = OffloadTo::cpu;
  offloaded.offload_params = OffloadTo::nvme;
  offloaded.nvme_params = test_swap();
  expect_same_curve(train(*world, offloaded, per_rank, tied, lora_run(tied, 0.1)), reference,
                    "LoRA, optimizer on the CPU, parameters on disk, persist_below");
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, LoraTraining, ::testing::Bool());

// lora.frozen_embedding: host. The frozen embedding stays whole on every rank in (pinned) host
// memory, and the model gathers the batch's rows there: the same losses, bit for bit, as the table
// kept (and at stage 3 sharded and gathered) with the rest of the working copy, on every stage,
// with checkpointing, a QLoRA base and parameter offload; a tied or trained embedding is refused.
TEST(LoraFrozenEmbedding, OnTheHostGivesTheSameLossesEverywhere) {
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  auto on_host = [](ZeroOptions o) {
    o.embed_on_host = true;
    return o;
  };
  for (int stage = 0; stage <= 3; ++stage) {
    const std::vector<double> device = train(*world, zero(stage), per_rank, false, lora_run(false, 0.1));
    EXPECT_EQ(train(*world, on_host(zero(stage)), per_rank, false, lora_run(false, 0.1)), device) << "stage " << stage;
  }
  EXPECT_EQ(train(*world, on_host(zero(3)), 1, false, qlora_run(false, "nf4", Recompute::layers)),
            train(*world, zero(3), 1, false, qlora_run(false, "nf4", Recompute::layers)))
      << "QLoRA nf4, activation checkpointing";
  ZeroOptions offloaded = zero(3, 1, 33);
  offloaded.offload_optimizer = OffloadTo::cpu;
  offloaded.offload_params = OffloadTo::nvme;
  offloaded.nvme_params = test_swap();
  EXPECT_EQ(train(*world, on_host(offloaded), per_rank, false, lora_run(false, 0.1)),
            train(*world, offloaded, per_rank, false, lora_run(false, 0.1)))
      << "parameters on disk";

  // At stage 3 on several ranks a sharded embedding is gathered into a new buffer at each acquire;
  // one on the host is handed out where it lies, whole (no allocation).
  if (world->size() > 1) {
    const ModelConfig config = tiny_config(false);
    for (bool host : {false, true}) {
      ZeroOptions o = zero(3);
      o.embed_on_host = host;
      ZeroStore store(config, lora_run(false, 0.0).params(config), o, *world);
      store.init_random(5, 0.1f);
      const size_t before = memory_stats(Device::cpu()).allocated;
      const Tensor embed = store.acquire(UnitId::embed()).embed;
      EXPECT_EQ(embed.shape(), Shape({61, 32}));
      const size_t gathered = memory_stats(Device::cpu()).allocated - before;
      if (host)
        EXPECT_EQ(gathered, 0u);
      else
        EXPECT_GE(gathered, 61u * 32 * 4) << "the table (padded to the ranks' shards)";
      store.release(UnitId::embed());
    }
  }

  // A trainable embedding (no LoRA: everything trains) cannot live there.
  EXPECT_THROW(train(*world, on_host(zero(3)), per_rank, false), Error);
  lora::LoraOptions o = options(true, 0.0);
  o.frozen_embedding = "host";
  o.modules_to_save = {};
  try {
    lora::resolve(o, tiny_config(true));
    ADD_FAILURE() << "a tied embedding on the host was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lora.frozen_embedding: host needs an embed_tokens of its own"),
              std::string::npos) << e.what();
  }
  o = options(false, 0.0);
  o.frozen_embedding = "host";
  o.modules_to_save = {"embed_tokens"};
  EXPECT_THROW(lora::resolve(o, tiny_config(false)), Error);
  o.frozen_embedding = "gpu";
  o.modules_to_save = {};
  EXPECT_THROW(lora::resolve(o, tiny_config(false)), Error);
}

namespace {

// A LoRA job on the tiny model, as a job config (what checkpoints keep and exports read).
JobConfig lora_job(const std::string& adapter = "", const std::string& base_quant = "none") {
  std::vector<std::string> sets = {"model.init.model_type=llama", "model.init.vocab_size=61",
                                   "model.init.hidden_size=32", "model.init.intermediate_size=48",
                                   "model.init.num_hidden_layers=2", "model.init.num_attention_heads=4",
                                   "model.init.num_key_value_heads=2", "model.init.max_position_embeddings=64",
                                   "model.init.tie_word_embeddings=true", "train.seed=5", "lora.r=4", "lora.alpha=8",
                                   "lora.target_modules=[q_proj, v_proj, down_proj]", "lora.modules_to_save=[embed_tokens]"};
  if (!adapter.empty()) sets.push_back("lora.adapter=" + adapter);
  sets.push_back("lora.base_quant=" + base_quant);
  return load_job_config("", sets);
}

std::unique_ptr<ZeroStore> lora_store(const JobConfig& job, Communicator& comm) {
  const ModelConfig config = job_model_config(job.model);
  const JobParams params = job_params(job, config);
  ZeroOptions options = zero(3);
  options.lora_scale = params.lora_scale();
  auto store = std::make_unique<ZeroStore>(config, params.params, options, comm);
  load_weights(*store, job, config, params);
  return store;
}

double train_lora(ZeroStore& store, Communicator& comm, int64_t step) {
  const int64_t per_rank = kGlobalBatch / comm.size();
  return train_step(store, comm, micro_batches(step, comm.rank() * per_rank, (comm.rank() + 1) * per_rank, 1),
                    adam_step(step), 0.5, Recompute::none)
      .loss;
}

// Four steps of `job` straight, and the same job's first two saved as a checkpoint under `dir`.
std::pair<std::vector<double>, std::string> straight_and_saved(const JobConfig& job, Communicator& world,
                                                               const std::string& dir) {
  std::vector<double> straight;
  {
    auto store = lora_store(job, world);
    for (int64_t step = 1; step <= 4; ++step) straight.push_back(train_lora(*store, world, step));
  }
  auto store = lora_store(job, world);
  for (int64_t step = 1; step <= 2; ++step) train_lora(*store, world, step);
  return {straight, checkpoint::save(dir, *store, {2, 0, {}}, to_yaml(job), 0, world)};
}

// `saved` (step 2 of `straight`) resumed on one rank goes on to straight's steps 3 and 4 (1e-4).
void expect_resumes_alone(const JobConfig& job, const std::string& saved, const std::vector<double>& straight) {
  auto self = make_self_communicator();
  auto alone = lora_store(job, *self);
  checkpoint::load(saved, *alone);
  for (int64_t step = 3; step <= 4; ++step)
    EXPECT_NEAR(train_lora(*alone, *self, step), straight[step - 1], 1e-4 * straight[step - 1]) << "step " << step;
}

// Every rank agrees on the folder.
std::string shared_dir(Communicator& world, const std::string& name) {
  Tensor pid = Tensor::from_vector<int64_t>({static_cast<int64_t>(::getpid())}, {1}, DType::I64);
  world.broadcast(pid, 0).wait();
  return (std::filesystem::temp_directory_path() / ("tessera-" + name + "-" + std::to_string(pid.data_as<int64_t>()[0])))
      .string();
}

}  // namespace

// A LoRA checkpoint holds the trainable tensors only, resumes on one rank what 2 or 3 saved, and a
// PEFT adapter read in, checkpointed and exported again comes out bit for bit (fp32).
TEST(LoraCheckpoint, AdaptersOnlyResumeAnywherePeftRoundTripsExactly) {
  namespace fs = std::filesystem;
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "lora-ckpt");
  const JobConfig plain = lora_job();
  const ModelConfig config = job_model_config(plain.model);
  const JobParams params = job_params(plain, config);
  // A PEFT adapter of random tensors (B too, so that it changes the model).
  const std::string adapter = dir + "/adapter-in";
  if (world->rank() == 0) {
    uint64_t counter = 0;
    lora::write_peft_adapter(adapter, config, *params.adapter, "tiny", [&](const ParamSpec& p) {
      Tensor t = Tensor::empty(p.shape, DType::F32);
      ops::fill_normal(t, 77, counter, 0.0f, 0.05f);
      counter += static_cast<uint64_t>(t.numel());
      return t;
    }, DType::F32);
  }
  world->barrier();
  const JobConfig job = lora_job(adapter);

  const auto [straight, saved] = straight_and_saved(job, *world, dir);
  // Only trainable tensors have state: a frozen base weight is not in the file.
  {
    checkpoint::StateFile state(saved + "/state.h5", /*writable=*/false);
    std::vector<float> buffer(32 * 32);
    EXPECT_THROW(state.read("master", {"model.layers.0.self_attn.q_proj.weight", {32, 32}}, 0, 1024, buffer.data()),
                 Error);
    EXPECT_NO_THROW(state.read("master", {"model.layers.0.self_attn.q_proj.lora_A.weight", {4, 32}}, 0, 128,
                               buffer.data()));
  }
  expect_resumes_alone(lora_job(), saved, straight);

  // PEFT -> Tessera -> PEFT.
  {
    auto store = lora_store(job, *world);
    const std::string untrained = checkpoint::save(dir + "/round-trip", *store, {0, 0, {}}, to_yaml(job), 0, *world);
    if (world->rank() == 0) {
      export_peft({.checkpoint = untrained, .out = dir + "/adapter-out", .dtype = DType::F32});
      const SafetensorsFile in = SafetensorsFile::open(adapter + "/" + lora::kPeftWeightsFile);
      const SafetensorsFile out = SafetensorsFile::open(dir + "/adapter-out/" + lora::kPeftWeightsFile);
      EXPECT_EQ(out.names(), in.names());
      for (const std::string& name : in.names())
        EXPECT_EQ(out.tensor(name).to_vector<float>(), in.tensor(name).to_vector<float>()) << name;
      const lora::PeftAdapter back = lora::read_peft_adapter(dir + "/adapter-out", config);
      EXPECT_EQ(back.spec.target_names(), params.adapter->target_names());
      EXPECT_EQ(back.spec.saved_modules(), params.adapter->saved_modules());
      EXPECT_FLOAT_EQ(back.spec.scale(), params.adapter->scale());
    }
  }
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir);
}

// A QLoRA checkpoint (nf4 base) resumes on one rank what 2 or 3 saved, and its merged export is
// dequantize(quantize(W)) + scale B A for the adapted projections, dequantize(quantize(W)) for the
// others, the base itself for the rest (fp32, to 1e-6).
TEST(QloraCheckpoint, ResumesAnywhereAndMergesIntoTheDequantizedBase) {
  namespace fs = std::filesystem;
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "qlora-ckpt");
  const JobConfig job = lora_job("", "nf4");
  const ModelConfig config = job_model_config(job.model);
  const JobParams params = job_params(job, config);
  const auto [straight, saved] = straight_and_saved(job, *world, dir);
  expect_resumes_alone(job, saved, straight);

  if (world->rank() == 0) {
    export_safetensors({.checkpoint = saved, .out = dir + "/merged", .dtype = DType::F32});
    const SafetensorsModel merged = SafetensorsModel::open(dir + "/merged");
    checkpoint::StateFile state(saved + "/state.h5", /*writable=*/false);
    auto trained = [&](const std::string& name) {
      for (const ParamSpec& p : params.params)
        if (p.name == name) {
          Tensor t = Tensor::empty(p.shape, DType::F32);
          state.read("master", p, 0, t.numel(), t.data_as<float>());
          return t;
        }
      throw Error("no parameter " + name);
    };
    int64_t offset = 0, adapted = 0, packed_only = 0;
    for (const ParamSpec& p : params.params) {
      const int64_t first = offset;
      offset += shape_numel(p.shape);
      if (p.trainable || !merged.contains(p.name)) continue;
      Tensor base = Tensor::empty(p.shape, DType::F32);
      init_param(p, base, 5, static_cast<uint64_t>(first), kInitStd);
      Tensor want = base;
      if (p.quant) {
        want = Tensor::empty(p.shape, DType::F32);
        ops::fake_quantize(want, base, *p.quant);
        const std::string stem = p.name.substr(0, p.name.size() - std::string("weight").size());
        const bool is_adapted = std::find_if(params.params.begin(), params.params.end(), [&](const ParamSpec& q) {
                                  return q.name == stem + "lora_A.weight";
                                }) != params.params.end();
        if (is_adapted) {
          want = lora::merge_lora(want, trained(stem + "lora_A.weight"), trained(stem + "lora_B.weight"),
                                  params.lora_scale());
          ++adapted;
        } else {
          ++packed_only;
        }
      }
      const std::vector<float> got = ops::cast(merged.tensor(p.name), DType::F32).to_vector<float>();
      const std::vector<float> expect = want.to_vector<float>(), unquantized = base.to_vector<float>();
      ASSERT_EQ(got.size(), expect.size()) << p.name;
      double worst = 0, off_base = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::abs(double(got[i]) - expect[i]));
        off_base = std::max(off_base, std::abs(double(got[i]) - unquantized[i]));
      }
      EXPECT_LE(worst, 1e-6) << p.name;
      if (p.quant) EXPECT_GT(off_base, 1e-4) << p.name << ": merged into the unquantized base";
    }
    EXPECT_EQ(adapted, 2 * 3) << "q, v and down of both layers";
    EXPECT_EQ(packed_only, 2 * 4);
  }
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir);
}
