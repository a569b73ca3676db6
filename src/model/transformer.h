// The decoder-only transformer (Llama, Mistral, Qwen2, Qwen3) with explicit forward and backward
// per layer, as llm.c does: no autograd, each layer saves what its backward needs (or only its
// input, with activation checkpointing, and recomputes the rest).
//
// Activations are [T, features] rows (T = batch x seq) in the compute dtype: the parameters'
// dtype (bf16 or f32 on GPU, f32 on CPU). Gradients are fp32 and accumulate (+=), so gradient
// accumulation and tied embeddings need nothing special.
#pragma once

#include <array>
#include <vector>

#include "model/model_config.h"
#include "model/param_source.h"
#include "model/token_batch.h"
#include "model/transformer_params.h"

namespace tessera {

// RoPE frequencies for a config, on the model's device.
struct RopeTable {
  Tensor inv_freq;  // [head_dim / 2] f32
  float attention_scaling = 1.0f;
  static RopeTable make(const ModelConfig& config, Device device);
};

// LoRA dropout in one layer of one pass: the probability and the layer's Philox key; each
// projection draws its own stream from it, counted from the batch's first token.
struct LayerDropout {
  float p = 0.0f;  // 0: off
  uint64_t key = 0;
  LoraDropout for_projection(Projection which, const TokenBatch& batch, int64_t in_features) const;
};

// What one layer's backward needs from its forward.
struct LayerActivations {
  Tensor x, rstd_in, h;                   // layer input, input norm
  Tensor q_raw, k_raw, rstd_q, rstd_k;    // before Qwen3's q/k norms
  Tensor q, k, v, attn, lse;              // attention inputs (after RoPE) and output
  Tensor x_mid, rstd_post, h_post;        // after the attention residual, post-attention norm
  Tensor gate, up, act;                   // MLP
  std::array<Tensor, kProjections> lora_xa;  // LoRA: each projection's drop(x) A^T
};

// y = layer(x). With `saved`, keeps what layer_backward needs.
Tensor layer_forward(const ModelConfig& config, const RopeTable& rope, const LayerParams& p, const Tensor& x,
                     const TokenBatch& batch, LayerActivations* saved, const LayerDropout& dropout = {});

// dx from dy (the gradient of the layer's output); parameter gradients accumulate into the
// tensors `grads` defines (frozen ones are undefined there). `dropout` as in the forward. What
// `saved` lacks of h, h_post and act (Recompute::norms_swiglu) is made again here.
Tensor layer_backward(const ModelConfig& config, const RopeTable& rope, const LayerParams& p, LayerParams& grads,
                      const Tensor& dy, const TokenBatch& batch, const LayerActivations& saved,
                      const LayerDropout& dropout = {});

struct ModelOutput {
  double loss = 0;  // mean next-token cross-entropy over batch.num_targets
  Tensor logits;    // f32 [B, S, vocab] when asked for
};

// LoRA dropout of one pass: its probability and Philox key (training: derived from the seed and
// the step, so a recomputed forward and every rank draw the same masks).
struct PassDropout {
  float p = 0.0f;  // 0: off
  uint64_t key = 0;
};

// What backward recomputes instead of keeping from the forward:
//   none          everything a layer's backward reads is kept;
//   norms_swiglu  the outputs of the two norms and of the SwiGLU product (per token and layer two
//                 hidden-sized rows and one intermediate-sized row, about a third of what a layer
//                 keeps) are recomputed from the kept inputs, bit for bit as the forward made them;
//   layers        only each layer's input is kept and its whole forward runs again.
enum class Recompute { none, norms_swiglu, layers };

// What backward recomputes, and for norms_swiglu in which layers: the first `layers` (0: all), so
// that memory is traded for speed a layer at a time (train.recompute_norms_swiglu_layers). A kind
// alone converts to a plan for every layer.
struct RecomputePlan {
  Recompute kind = Recompute::none;
  int64_t layers = 0;
  RecomputePlan(Recompute k = Recompute::none, int64_t n = 0) : kind(k), layers(n) {}
  bool norms_swiglu_in(int64_t layer) const {
    return kind == Recompute::norms_swiglu && (layers == 0 || layer < layers);
  }
};

struct RunOptions {
  bool want_logits = false;
  bool backward = false;
  RecomputePlan recompute;
  // Gradients are of (sum of the batch's token losses) x grad_scale; 0 means 1 / batch.num_targets
  // (the batch's mean). A data-parallel step passes 1 / (targets in the whole global batch).
  float grad_scale = 0.0f;
  // LoRA dropout (training only; layers and projections draw streams of their own from it).
  PassDropout lora_dropout;
};

// Forward through the whole model, unit by unit from `source`; with backward, gradients
// accumulate into source.grads(). The loss never materialises fp32 logits for the whole batch
// (ops::linear_cross_entropy). ModelOutput.loss is the batch's mean loss; loss_sum its sum.
ModelOutput run_model(const ModelConfig& config, ParamSource& source, const TokenBatch& batch,
                      const RunOptions& options, double* loss_sum = nullptr);

// Whole parameters in memory: forward, and with `grads` backward too.
ModelOutput run_model(const ModelConfig& config, const ModelParams& params, const TokenBatch& batch,
                      bool want_logits, ModelParams* grads, bool activation_checkpointing = false);

}  // namespace tessera
