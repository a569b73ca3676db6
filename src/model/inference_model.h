// A model for inference: its config, the rotary table made once, and its weights behind a
// ParamSource. run() executes many tokens of many sequences packed together (prefill chunks and
// decode tokens in one pass) against the paged KV cache. The layers are training's own
// (model/layer_parts.h); only attention differs, and with InferenceOptions::fused_decode the
// projections, RoPE and KV write around it run as kernels/ops.h's fused decode ops.
//
// A step's int32 inputs go to the device in one copy from a pinned buffer (model/step_batch.h);
// the device picks each logit row's token (ops::sample_rows: greedy, or drawn by the row's
// SamplingRow, which travels in that copy), so only 8 bytes per row come back unless a row asks
// for its full logits; the host waits once, for the results. On CUDA a
// decode step (one token per sequence) is padded to a bucket of 1, 2, 4, ... 256 sequences and
// replayed from a CUDA graph captured for that bucket, block-table width and cache (the first
// step of a shape runs eagerly and is then captured; a capture that fails is logged once and the
// shape stays eager).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/cuda_graph.h"
#include "kernels/quant_format.h"
#include "model/adapter_bank.h"
#include "model/kv_cache.h"
#include "model/layer_parts.h"
#include "model/model_config.h"
#include "model/param_source.h"
#include "model/step_batch.h"
#include "model/transformer.h"

namespace tessera {

// InferenceOptions::fused_decode's default: on unless TESSERA_FUSED_DECODE=0 (read once).
bool fused_decode_default();
// InferenceOptions::norm_prologue_rows's default: TESSERA_NORM_PROLOGUE_ROWS (0 to 4; 1 unless
// set; read once).
int norm_prologue_rows_default();
// InferenceOptions::stacked_rows's default: TESSERA_STACKED_ROWS (0, 1, 2, 3, 4, 5, 8, 16, 32 or
// 64; 0: never; 5 unless set; read once).
int stacked_rows_default();

struct InferenceOptions {
  bool cuda_graphs = true;  // replay decode steps from CUDA graphs (CUDA with fixed weights only)
  bool pad_decode = false;  // pad decode steps to their bucket without graphs (tests the padding on any device)
  // CUDA events around each op family of a step (each projection by name, attention, lm_head, the
  // norms and RoPE, ...), summed in StepTimes::op_ms; the step runs eagerly (no graphs) after a
  // 20 ms hold of the stream, so that the device runs it back to back as a graph would. Benchmarks.
  bool profile_ops = false;
  // A layer in fewer launches through kernels/ops.h's fused decode ops (q/k/v in one gemv, RoPE and
  // Qwen3's q/k norms with the KV write, gate/up with the SwiGLU in the epilogue), the same
  // numbers as the plain ops; packed projections (multiplied by gemm_packed) take the packed forms
  // (ops::project_many_packed, project_swiglu_packed); projections with LoRA or a fake quantizer,
  // and models with adapters, keep one call per projection. TESSERA_FUSED_DECODE=0 makes the
  // default off.
  bool fused_decode = fused_decode_default();
  // With fused_decode, a layer whose seven projections are plain, in a step of at most this many
  // rows that the small-M gemv takes (up to 4: ops::folds_into_gemv), runs its norms and residual
  // adds inside the projections' launches: q/k/v and gate/up norm their input first, o_proj and
  // down_proj add the residual (no add+norm launches in the layer, the same numbers bit for bit).
  // 0: never. 1 by default: with the split gemv it is faster at batch 1 (session 10 call B).
  int norm_prologue_rows = norm_prologue_rows_default();
  // With fused_decode, a step of at least this many rows (0: none) multiplies a layer's stacked
  // projections (model/stacked_projections.h, as OwnedParams holds them) in one gemm each: a
  // decode step's q/k/v into one [T, Hq + 2 Hkv, D] that its attention reads in place
  // (ops::rope_paged_attention_stacked), and every step's gate/up into [T, 2F] for
  // ops::swiglu_stacked. The same numbers as one gemm per projection. 5 by default (1B batch 16
  // +18% on the H200; at batch 4 the gemv's one launch for q/k/v was faster).
  int stacked_rows = stacked_rows_default();
};

// What run() returns for the logit rows asked for, in their order.
struct StepOutput {
  std::vector<int32_t> token;    // each row's pick by its SamplingRow (greedy: the first maximum)
  std::vector<float> logprob;    // its log-softmax
  std::vector<int64_t> logits_row;  // each row's row in `logits`, -1 when its full logits were not asked for
  Tensor logits;                 // host f32 [rows asked for in full, vocab]; valid until the next run()
  double gpu_ms = 0;             // device time of the step (CUDA events; 0 on the CPU)
};

// Totals over run() calls since the last reset_timings(), for benchmarks: where a step's time goes.
struct StepTimes {
  int64_t steps = 0, decode_steps = 0, graph_replays = 0;
  double run_ms = 0;  // host wall time inside run(), the final wait included
  double gpu_ms = 0;  // device time between the step's first and last queued work (CUDA events)
  std::map<std::string, double> op_ms;  // with InferenceOptions::profile_ops: device time per op family
};

class InferenceModel {
 public:
  // Weights held whole (they must outlive the model).
  InferenceModel(ModelConfig config, std::shared_ptr<ParamSource> source, Device device, DType dtype,
                 InferenceOptions options = {});
  ~InferenceModel();

  const ModelConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }  // of the weights and activations
  const InferenceOptions& options() const { return options_; }
  void set_options(const InferenceOptions& options);  // drops the graphs captured so far
  // The KV cache's dtype: bf16 on the GPU (what paged attention runs in), f32 on the CPU.
  DType cache_dtype() const;
  int64_t graphs_captured() const;
  const StepTimes& timings() const { return times_; }
  void reset_timings() { times_ = {}; }

  // LoRA adapters that StepInput::adapter picks among, applied batched (ops::lora_batched) after
  // the shared base gemm of every projection; stacked for this model's config, dtype and device.
  // With a bank every step carries a per-token adapter index (-1: the base), graphs included.
  void set_adapters(std::shared_ptr<const AdapterBank> adapters);
  const AdapterBank* adapters() const { return adapters_.get(); }

  // The logits' product runs against a packed copy of lm_head (the embedding when tied) quantized
  // under `spec` (RTN), through ops::gemm_packed: a decoding step of 1-8 sequences then reads
  // about bits/16 of the bf16 head's bytes (the 1B shape's head is a fifth of its weights).
  void quantize_lm_head(const QuantSpec& spec);
  // The same with `head` already packed (a quantized checkpoint's own lm_head, on this device).
  void use_packed_lm_head(std::shared_ptr<const PackedTensor> head);
  const PackedTensor* packed_lm_head() const { return packed_lm_head_.get(); }

  // Writes the tokens' keys and values into the cache and returns the logit rows' picks (and the
  // full logits of the rows in.full_logits asks for).
  StepOutput run(const StepInput& input, KvCache& cache);
  // run() with every row's full logits: f32 host [logit_rows.size(), vocab], in that order.
  Tensor step(const StepInput& input, KvCache& cache);

 private:
  struct Outputs {
    Tensor logits, index, logprob;  // device: f32 [R, vocab], int32 [R], f32 [R]
  };
  struct Graph {
    Tensor inputs;  // device int32 [layout.size()], the graph's fixed input buffer
    Outputs out;
    CudaGraph graph;
    bool failed = false;
  };
  using GraphKey = std::tuple<int64_t, int64_t, const void*>;  // bucket, table width, cache

  struct Mark;  // events around one op family of a step (profile_ops)

  // decode: one token per sequence (is_decode_step), so the fused ops may turn and cache a
  // token's key inside its attention.
  Outputs forward(const Tensor& inputs, const StepLayout& layout, KvCache& cache, bool decode);
  // Whether layer p of a step of `tokens` rows folds its norms and residual adds into its
  // projections (options_.norm_prologue_rows).
  bool folds_norms(const LayerParams& p, int64_t tokens) const;
  // The fused form of layer_attention_inputs and the KV write (options_.fused_decode): the input
  // norm unless a.h holds it (inside the q/k/v launch when `fold`), q/k/v (one ops::project_many
  // for plain projections, or project_many_packed for packed ones), then with `rope`
  // ops::rope_kv_write into the cache (without, q/k/v stay raw for ops::rope_paged_attention).
  // Returns the stacked q/k/v [T, Hq + 2 Hkv, D] where one gemm made them (without `rope`, in a
  // step of options_.stacked_rows; a.q, a.k, a.v stay undefined), else an undefined tensor.
  Tensor fused_attention_inputs(const LayerParams& p, const Tensor& x, const Tensor& positions, const Tensor& slots,
                              Tensor& k_cache, Tensor& v_cache, LayerActivations& a, const ProjectFn& project,
                              bool rope, bool fold);
  // Whether a step of `tokens` rows multiplies stacked projections together (options_.stacked_rows).
  bool stacks(int64_t tokens) const;
  // layer_attention_outputs of a layer that folds_norms: o_proj with the residual add, gate/up
  // with the post-attention norm and the SwiGLU, down_proj with the residual add; fills a.x_mid
  // and a.act and returns the layer's output (the next layer norms it itself).
  Tensor folded_attention_outputs(const LayerParams& p, const Tensor& attn, LayerActivations& a);
  // fn(), timed as `name` (inside `parent`) when profiling.
  template <typename Fn>
  decltype(auto) timed(std::string_view name, std::string_view parent, Fn&& fn);
  Tensor staged(const StepInput& in, const StepLayout& layout, KvCache& cache);
  Outputs decode_with_graph(const Tensor& host_inputs, const StepLayout& layout, KvCache& cache, bool& replayed);
  StepOutput fetch(const StepInput& in, const Outputs& out);

  ModelConfig config_;
  std::shared_ptr<ParamSource> source_;
  Device device_;
  DType dtype_;
  InferenceOptions options_;
  RopeTable rope_;
  Tensor host_inputs_, host_picks_, host_logits_;  // pinned, reused (grown) across steps
  std::map<GraphKey, std::unique_ptr<Graph>> graphs_;
  bool capture_failure_logged_ = false;
  StepTimes times_;
  std::vector<std::unique_ptr<Mark>> marks_;  // this step's, with profile_ops
  std::shared_ptr<const AdapterBank> adapters_;
  std::shared_ptr<const PackedTensor> packed_lm_head_;
};

// Parameters held in memory as a ParamSource (owns them).
class OwnedParams : public ParamSource {
 public:
  // Stacks each layer's q/k/v and gate/up weights (model/stacked_projections.h).
  explicit OwnedParams(ModelParams params);
  const ModelParams& acquire(UnitId) override { return params_; }
  void release(UnitId) override {}
  ModelParams& grads(UnitId) override;
  void grads_done(UnitId) override {}
  bool fixed_addresses() const override { return true; }

 private:
  ModelParams params_;
};

}  // namespace tessera
