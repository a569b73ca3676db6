#include "engine/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include "core/env_switch.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/stream.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/heartbeat.h"
#include "engine/config/offload_options.h"
#include "engine/job_limits.h"
#include "engine/evaluation.h"
#include "engine/job_params.h"

#include <fmt/ranges.h>
#include "engine/model_folder.h"
#include "engine/model_loader.h"
#include "engine/qat.h"
#include "engine/qat_scales.h"
#include "engine/schedule.h"
#include "engine/rank_figures.h"
#include "engine/train_log.h"
#include "engine/train_metrics.h"
#include "engine/train_step.h"
#include "engine/watchdog.h"
#include "io/data/data_loader.h"
#include "io/safetensors.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model_config_params.h"
#include "model/transformer.h"

namespace tessera {

namespace {

std::atomic<bool> g_stop_requested{false};

void request_stop(int) { g_stop_requested = true; }

Device training_device(const TrainSection& train, const World& world) {
  if (train.device == "cpu") return Device::cpu();
  if (train.device == "cuda")
    TS_CHECK(world.device.is_cuda(), "train.device is cuda, but rank {} has no GPU ({})", world.rank,
             cuda_unavailable_reason());
  return world.device;
}

OffloadTo offload_to(const OffloadSection& section) {
  return section.device == "nvme" ? OffloadTo::nvme : section.device == "cpu" ? OffloadTo::cpu : OffloadTo::none;
}

offload::NvmeSwap nvme_swap(const OffloadSection& section) {
  return {.io = nvme_options(section), .pinned_bytes = section.pinned_buffer_mb << 20,
          .units_in_flight = static_cast<int>(section.units_in_flight)};
}

tok::Tokenizer load_tokenizer(const ModelSection& model) {
  const std::string& path = model.tokenizer.empty() ? model.path : model.tokenizer;
  TS_CHECK(!path.empty(), "the job names no tokenizer: set model.tokenizer (a tokenizer.json, or bytes)");
  return open_tokenizer(path);
}

// Model FLOPs of one global batch: 6 N per token plus causal attention, as torch_peer.py counts;
// 4 N with a frozen base (LoRA: no weight-gradient products).
double step_flops(const ModelConfig& c, int64_t params, int64_t sequences, int64_t seq, bool frozen_base) {
  const double tokens = static_cast<double>(sequences) * seq;
  return (frozen_base ? 4.0 : 6.0) * params * tokens +
         6.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * seq * tokens;
}

// This rank's micro-batches of global batch `index` after `from` (a position in the sample stream).
std::vector<TokenBatch> rank_batches(const data::DataLoader& loader, const data::LoaderState& from, int64_t index,
                                     int64_t global, int64_t begin, int64_t end, int64_t micro, Device device) {
  const std::vector<data::Sequence> sequences = loader.global_batch(from, index, global, begin, end);
  std::vector<TokenBatch> out;
  for (size_t first = 0; first < sequences.size(); first += micro) {
    const size_t last = std::min(sequences.size(), first + static_cast<size_t>(micro));
    out.push_back(make_token_batch({sequences.begin() + first, sequences.begin() + last}, device));
    out.back().first_token = (begin + static_cast<int64_t>(first)) * out.back().seq;  // in the global batch
  }
  return out;
}

double evaluate(const ModelConfig& config, ParamSource& source, Communicator& host, const data::DataLoader& loader, const JobConfig& job,
                const World& world, Device device) {
  const int64_t per_rank = job.train.micro_batch_size, global = per_rank * world.size;
  EvalTotals rank;
  for (int64_t i = 0; i < job.eval.batches; ++i) {
    const EvalTotals t = eval_loss(config, source, rank_batches(loader, loader.start(), i, global, world.rank * per_rank,
                                                                (world.rank + 1) * per_rank, per_rank, device));
    rank.loss_sum += t.loss_sum;
    rank.targets += t.targets;
  }
  Tensor totals = Tensor::from_vector<float>({static_cast<float>(rank.loss_sum), static_cast<float>(rank.targets)}, {2}, DType::F32);
  host.all_reduce(totals, ReduceOp::Sum).wait();
  return totals.data_as<float>()[0] / std::max(1.0f, totals.data_as<float>()[1]);
}

// Where the ranks' heartbeats go: the checkpoint folder, which the ranks of a multi-host job share;
// without one a folder under the temporary directory, named after a number rank 0 draws (one host).
std::string heartbeat_dir(const std::string& checkpoint_dir, Communicator& host) {
  if (!checkpoint_dir.empty()) return (std::filesystem::path(checkpoint_dir) / ".heartbeat").string();
  Tensor id = Tensor::from_vector<int64_t>(
      {static_cast<int64_t>(std::chrono::system_clock::now().time_since_epoch().count() ^ ::getpid())}, {1},
      DType::I64);
  host.broadcast(id, 0).wait();
  return (std::filesystem::temp_directory_path() / fmt::format("tessera-heartbeat-{:x}", id.data_as<int64_t>()[0]))
      .string();
}

// The adapters of a LoRA checkpoint belong to the base they were trained against: resuming one
// saved over another lora.base_quant would continue on other weights without a word.
void check_same_base_quant(const JobConfig& job, const std::string& folder) {
  const JobConfig saved = load_job_config(folder + "/config.yaml");
  const std::string was = saved.lora ? saved.lora->base_quant : "none", is = job.lora ? job.lora->base_quant : "none";
  TS_CHECK(was == is, "{}: its adapters were trained on a base stored as lora.base_quant {}, this job's is {}; "
           "resume with lora.base_quant: {} (or start a new checkpoint.dir)", folder, was, is, was);
}

}  // namespace

TrainSummary run_training(const JobConfig& job, const World& world, const metrics::ServeFn& serve) {
  // The metrics port is bound first, so a port in use fails before the model is loaded.
  std::unique_ptr<TrainMetrics> served;
  if (world.rank == 0 && job.log.metrics_port > 0)
    served = std::make_unique<TrainMetrics>(serve, job.log.metrics_host, static_cast<int>(job.log.metrics_port));
  const Device device = training_device(job.train, world);
  const ModelConfig config = job_model_config(job.model);
  check_job_fits(job, config, world, device);
  const tok::Tokenizer tokenizer = load_tokenizer(job.model);
  TS_CHECK(tokenizer.vocab_size() <= config.vocab_size, "the tokenizer has {} ids but the model's vocabulary is {}",
           tokenizer.vocab_size(), config.vocab_size);

  auto host = make_mpi_communicator(world);
  auto comm = make_communicator(world, device);
  const DType dtype = job.train.dtype == "bf16" ? DType::BF16 : DType::F32;
  const JobParams params = job_params(job, config);
  ZeroStore store(config, params.params,
                  {.stage = static_cast<int>(job.zero.stage), .prefetch = static_cast<int>(job.zero.prefetch),
                   .compute_dtype = dtype, .device = device,
                   .offload_optimizer = offload_to(job.zero.offload_optimizer),
                   .offload_grads_on_device = job.zero.offload_optimizer.gradients == "device",
                   .offload_params = offload_to(job.zero.offload_params),
                   .nvme_optimizer = nvme_swap(job.zero.offload_optimizer),
                   .nvme_params = nvme_swap(job.zero.offload_params),
                   .persist_below = job.zero.persist_below,
                   .reduce_bucket_bytes = static_cast<int64_t>(job.zero.reduce_bucket_mb * (1 << 20)),
                   .lora_scale = params.lora_scale(),
                   .packed_matmul = params.adapter ? params.adapter->packed_matmul : PackedMatmul::dequantize,
                   .embed_on_host = params.adapter && params.adapter->embed_on_host,
                   .overlap_step = job.zero.overlap_step,
                   // A benchmark's knob (scripts/device-tests.sh train_1b measures both): 0 takes the
                   // gradient norm after the whole backward even with zero.overlap_step.
                   .early_norm = env_switch("TESSERA_EARLY_NORM", true)},
                  *comm);
  load_weights(store, job, config, params);
  // QAT: the model sees the store's parameters through fake quantization.
  std::optional<QatSource> qat;
  const std::optional<QatSpec> qat_spec =
      job.quant.qat ? std::optional<QatSpec>(resolve_qat(*job.quant.qat, config)) : std::nullopt;
  if (qat_spec) qat.emplace(store, config, *qat_spec);
  ParamSource& model_source = qat ? static_cast<ParamSource&>(*qat) : store;

  TS_CHECK(!job.data.train.empty(), "data.train: no training data given");
  const uint64_t seed = static_cast<uint64_t>(job.train.seed);
  const data::DataLoader train_data(job.data, tokenizer, seed);
  std::unique_ptr<data::DataLoader> eval_data;
  if (!job.data.eval.empty() && job.eval.every_steps > 0) {
    eval_data = std::make_unique<data::DataLoader>(job.data, tokenizer, seed, data::Split::eval);
  }
  const int64_t per_rank = job.train.micro_batch_size * job.train.grad_accum, global = per_rank * world.size;
  train_data.batches_per_epoch(global);  // fails here, before training, when there is less than one global batch
  spdlog::info("training {} of {} parameters ({} layers{}) on {} rank(s), {}, ZeRO stage {}, global batch {} x {} tokens",
               store.trainable_params(), store.num_params(), config.num_hidden_layers,
               params.adapter ? fmt::format(", LoRA r {} on {}{}", params.adapter->r, fmt::join(params.adapter->target_names(), " "),
                                            params.adapter->base_quant
                                                ? fmt::format(", base {}", quant_scheme_name(*params.adapter->base_quant))
                                                : std::string())
                              : std::string(),
               world.size, device.str(), job.zero.stage, global, job.data.seq_len);
  if (qat) spdlog::info("quantization-aware training: {}", resolve_qat(*job.quant.qat, config).describe());

  TrainSummary summary;
  int64_t first_step = 1;
  data::LoaderState data_from = train_data.start();  // where this run's first batch begins
  const std::string resume_from =
      checkpoint::start(job.checkpoint.dir, job.checkpoint.resume, job.checkpoint.overwrite, store, *host);
  std::string lineage = checkpoint::new_lineage();  // only rank 0's is written
  // A LoRA job's base, hashed once, when a checkpoint will record it or a resume check it.
  const checkpoint::BaseWeights base = job.lora && (!job.checkpoint.dir.empty() || !resume_from.empty())
                                           ? job_base_weights(job, host.get())
                                           : checkpoint::BaseWeights{};
  if (!resume_from.empty()) {
    check_same_base_quant(job, resume_from);
    if (job.lora) checkpoint::check_same_base(checkpoint::read_trainer_state(resume_from).base, base, resume_from);
    const checkpoint::TrainerState state = checkpoint::load(resume_from, store);
    if (!state.lineage.empty()) lineage = state.lineage;
    first_step = state.step + 1;
    summary.steps_done = state.step;
    summary.skipped_steps = state.skipped_steps;
    if (state.step >= job.train.steps) {
      spdlog::info("nothing to do: {} is at step {} and train.steps is {}", resume_from, state.step, job.train.steps);
      return summary;
    }
    check_schedule_horizon(job.train, state.schedule_steps, resume_from);
    data_from = state.loader;
    if (data_from.seed != static_cast<uint64_t>(job.train.seed))
      spdlog::warn("{}: its data order has seed {}, train.seed is {}; the data goes on in the checkpoint's order",
                   resume_from, data_from.seed, job.train.seed);
    spdlog::info("resumed from {} (step {}; data: epoch {}, sequence {})", resume_from, state.step, data_from.epoch,
                 data_from.position);
  }
  const std::string config_yaml = to_yaml(job);
  std::unique_ptr<Heartbeat> heartbeat;
  std::unique_ptr<Watchdog> watchdog;
  if (job.train.collective_timeout_s > 0) {
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(job.train.collective_timeout_s * 1000));
    heartbeat = std::make_unique<Heartbeat>(heartbeat_dir(job.checkpoint.dir, *host), world.rank, world.size,
                                            std::clamp(timeout / 10, std::chrono::milliseconds(50),
                                                       std::chrono::milliseconds(1000)));
    watchdog = std::make_unique<Watchdog>(timeout, world.rank, nullptr, [&] { return heartbeat->who_stopped(); });
  }
  PhaseClock clock;  // this rank's step time split, for the metrics endpoint
  auto save = [&](int64_t step) {
    if (job.checkpoint.dir.empty()) return;
    if (watchdog) watchdog->suspend();  // writing may outlast the timeout; its barriers are not steps
    const auto saving = std::chrono::steady_clock::now();
    checkpoint::save(job.checkpoint.dir, store,
                     {step, summary.skipped_steps, train_data.state_after(data_from, step - first_step + 1, global),
                      job.train.steps, lineage, base},
                     config_yaml, job.checkpoint.keep_last, *host);
    clock.add_checkpoint(std::chrono::duration<double>(std::chrono::steady_clock::now() - saving).count());
    if (served) served->checkpoint(step);
  };

  // SIGUSR2 too: what mpirun forwards to the ranks (it takes SIGINT/SIGTERM as an abort and exits
  // 1); launch/tessera-launch turns SIGINT/SIGTERM into it.
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  std::signal(SIGUSR2, request_stop);
  const RecomputePlan recompute(job.train.activation_checkpointing ? Recompute::layers
                                 : job.train.recompute_norms_swiglu ? Recompute::norms_swiglu
                                                                    : Recompute::none,
                                 job.train.recompute_norms_swiglu_layers);
  TrainLog log(world.rank == 0, job.log.metrics_file, job.log.every_steps, device);
  log.set_metrics(served.get());
  for (int64_t step = first_step; step <= job.train.steps; ++step) {
    clock.start_step();
    const double lr = learning_rate(job.train, step);
    const auto batches = rank_batches(train_data, data_from, step - first_step, global, world.rank * per_rank,
                                      (world.rank + 1) * per_rank, job.train.micro_batch_size, device);
    clock.data_ready();
    const ops::AdamWStep adam{.lr = static_cast<float>(lr), .beta1 = static_cast<float>(job.train.betas[0]),
                              .beta2 = static_cast<float>(job.train.betas[1]), .eps = static_cast<float>(job.train.eps),
                              .weight_decay = static_cast<float>(job.train.weight_decay), .step = step};
    if (qat) {
      // Learned scales start as RTN's of the weights at the first fake-quantized step (a run
      // resumed past it has them from its checkpoint).
      if (qat_spec->learned_scales && step == qat_spec->first_step()) init_learned_scales(store, config, *qat_spec);
      qat->set_step(step);
    }
    const StepStats stats = train_step(store, *host, batches, adam, job.train.clip_grad_norm, recompute,
                                       params.dropout(seed, step), &model_source);
    synchronize_device(device);
    clock.end_step(stats.optimizer_seconds);
    if (watchdog) watchdog->beat(step);
    if (heartbeat) heartbeat->set_step(step);
    if (stats.skipped) {
      ++summary.skipped_steps;
      spdlog::warn("step {}: {}; the step was skipped ({} so far)", step,
                   stats.targets == 0 ? "the global batch has no tokens to predict" : "gradients are not finite",
                   summary.skipped_steps);
    }
    summary.steps_done = step;
    summary.last_loss = stats.loss;
    log.step({.step = step, .total_steps = job.train.steps, .loss = stats.loss, .lr = lr, .grad_norm = stats.grad_norm,
              .tokens = global * job.data.seq_len, .seconds = clock.step_seconds(),
              .flops = step_flops(config, store.num_params(), global, job.data.seq_len, params.adapter.has_value()),
              .forward_backward_seconds = stats.forward_backward_seconds, .update_seconds = stats.update_seconds,
              .norm_seconds = stats.norm_seconds, .behind_seconds = stats.behind_seconds,
              .data_seconds = clock.data_seconds(), .world = world.size, .skipped = stats.skipped});
    // Every rank's figures reach rank 0's metrics at log steps, in one small gather.
    if (job.log.metrics_port > 0 && log.logs(step, job.train.steps)) {
      std::vector<RankFigures> ranks = gather_rank_figures(*host, rank_figures(device, clock.totals()));
      if (served) served->ranks(std::move(ranks));
    }
    if (eval_data && step % job.eval.every_steps == 0) log.eval(step, evaluate(config, model_source, *host, *eval_data, job, world, device));
    // Every rank stops after the same step when any of them was asked to.
    Tensor stop = Tensor::from_vector<int32_t>({g_stop_requested ? 1 : 0}, {1}, DType::I32);
    host->all_reduce(stop, ReduceOp::Max).wait();
    summary.interrupted = stop.data_as<int32_t>()[0] != 0;
    const bool stop_after = step == job.train.stop_after && step < job.train.steps;
    const bool last = step == job.train.steps || summary.interrupted || stop_after;
    if (last || (job.checkpoint.every_steps > 0 && step % job.checkpoint.every_steps == 0)) save(step);
    if (watchdog) watchdog->beat(step);
    if (summary.interrupted) {
      spdlog::warn("stopped after step {}: interrupted (a signal){}", step, job.checkpoint.dir.empty() ? "" : " (checkpoint saved)");
      break;
    }
    if (stop_after) {
      spdlog::info("stopped after step {} of {} (train.stop_after){}", step, job.train.steps,
                   job.checkpoint.dir.empty() ? "" : "; resume to go on with the same schedule");
      break;
    }
  }
  // Reserved: what the caching allocator holds from the driver (cached blocks too), the footprint.
  spdlog::info("done: {} steps, last loss {:.4f}, peak memory {:.2f} GiB on {} ({:.2f} GiB reserved), {:.2f} GiB host",
               summary.steps_done, summary.last_loss, memory_stats(device).peak_allocated / 1073741824.0, device.str(),
               memory_stats(device).reserved / 1073741824.0, memory_stats(Device::cpu()).peak_allocated / 1073741824.0);
  return summary;
}

}  // namespace tessera
