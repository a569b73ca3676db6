// The 70B QLoRA job (configs/llama-70b-qlora.yaml) cannot run here; its load path can, scaled down.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/communicator.h"
#include "core/memory.h"
#include "engine/config/job_config.h"
#include "engine/job_params.h"
#include "engine/memory_estimate.h"
#include "engine/model_loader.h"
#include "engine/train_step.h"

using namespace tessera;

// The 70B QLoRA job's load path, scaled down (configs/llama-70b-qlora.yaml's proportions: GQA 8:1,
// intermediate 3.5 x hidden, nf4 base, frozen embedding on the host) on the CPU: the base is made
// and quantized one tensor at a time, so the host never holds it whole in bf16 (let alone fp32);
// what stays is the packed base, the bf16 embedding and lm_head and the adapters' state, as
// estimate-memory counts it, and loading takes a few projections' worth beyond that at a time. And the real 70B shape fits one H200 by the estimate.
TEST(QloraLargeBase, InitialisedAndQuantizedUnitByUnit) {
  const JobConfig job = load_job_config(
      "", {"model.init.model_type=llama", "model.init.vocab_size=512", "model.init.hidden_size=256",
           "model.init.intermediate_size=896", "model.init.num_hidden_layers=24", "model.init.num_attention_heads=8",
           "model.init.num_key_value_heads=1", "model.init.max_position_embeddings=128",
           "model.init.tie_word_embeddings=false", "train.dtype=bf16", "lora.r=4", "lora.base_quant=nf4",
           "lora.frozen_embedding=host"});
  const ModelConfig config = job_model_config(job.model);
  const JobParams params = job_params(job, config);
  double base_params = 0;
  for (const ParamSpec& p : params.params)
    if (!p.trainable) base_params += static_cast<double>(shape_numel(p.shape));
  auto self = make_self_communicator();
  const size_t before = memory_stats(Device::cpu()).allocated;
  reset_peak_memory(Device::cpu());
  double kept = 0, peak = 0;
  {
    ZeroStore store(config, params.params,
                    {.stage = 3, .compute_dtype = DType::BF16, .device = Device::cpu(),
                     .lora_scale = params.lora_scale(), .embed_on_host = true},
                    *self);
    load_weights(store, job, config, params);
    kept = static_cast<double>(memory_stats(Device::cpu()).allocated - before);
    peak = static_cast<double>(memory_stats(Device::cpu()).peak_allocated - before);
    // It trains: a step's loss is finite.
    std::vector<int64_t> ids(2 * 64);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7) % 512);
    const StepStats stats = train_step(store, *self, {TokenBatch::causal_lm(Tensor::from_vector(ids, {2, 64}, DType::I64),
                                                                            Device::cpu())},
                                       {.lr = 1e-3f, .step = 1}, 1.0, Recompute::layers);
    EXPECT_TRUE(std::isfinite(stats.loss));
    EXPECT_NEAR(stats.loss, std::log(512.0), 1.0) << "a random model predicts about uniformly";
  }
  const double bf16_base = 2 * base_params;
  const MemoryEstimate e = estimate_memory(config, job, 1).at(3);
  const double estimated = e.working + e.master + e.moments + e.gradients + e.host;
  // Beyond what it keeps, loading took a few projections' worth at a time, never a model's worth.
  const double largest_fp32 = 4.0 * config.intermediate_size * config.hidden_size;
  EXPECT_LT(peak - kept, 4 * largest_fp32) << "peak " << peak << " B, kept " << kept << " B";
  EXPECT_LT(peak, 0.6 * bf16_base) << "the base in bf16 is " << bf16_base << " B";
  EXPECT_NEAR(kept, estimated, 0.1 * estimated) << "what the store keeps against estimate-memory";

  // The real shape: about 43 GiB on one GPU, the embedding's 2 GiB on the host.
  const JobConfig big = load_job_config(TESSERA_SOURCE_DIR "/configs/llama-70b-qlora.yaml");
  const ModelConfig shape = job_model_config(big.model);
  EXPECT_EQ(shape.hidden_size, 8192);
  EXPECT_EQ(shape.num_hidden_layers, 80);
  const MemoryEstimate real = estimate_memory(shape, big, 1).at(3);
  EXPECT_LT(real.total(), 60.0 * (1 << 30)) << real.total() / (1 << 30) << " GiB";
  EXPECT_GT(real.working, 32.0 * (1 << 30)) << "the packed projections: 68.5e9 weights at about 0.52 B";
  EXPECT_NEAR(real.host, 2.0 * 128256 * 8192 + 2.0 * 8192 * 2048, 1.0);
}
