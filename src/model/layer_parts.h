// The two halves of a layer around its attention, shared by training (transformer.cpp: attention
// over the batch's own keys) and inference (inference_model.cpp: paged attention over the KV
// cache). Only the attention between them differs.
#pragma once

#include <functional>

#include "model/transformer.h"

namespace tessera {

// One projection's forward, y = l(in): training keeps LoRA's x A^T and applies dropout here.
using ProjectFn = std::function<Tensor(const Linear& l, Projection which, const Tensor& in)>;

// Input norm, q/k/v projections, Qwen3's q/k norms and RoPE at `positions` [T] int32: fills
// a.x, a.h, a.rstd_in, a.q [T, Hq, D], a.k and a.v [T, Hkv, D] (and a.q_raw, a.k_raw, a.rstd_q,
// a.rstd_k with qk_norm). An a.h already set is taken as the input norm of x (with a.rstd_in), as
// the previous layer's layer_attention_outputs computes it with `next`.
void layer_attention_inputs(const ModelConfig& config, const RopeTable& rope, const LayerParams& p, const Tensor& x,
                            const Tensor& positions, LayerActivations& a, const ProjectFn& project);

// The MLP's first half from the post-attention norm h: act = silu(gate(h)) * up(h). Inference
// passes its fused form (ops::project_swiglu), which keeps no gate and up for a backward.
using GateUpFn = std::function<Tensor(const LayerParams& p, const Tensor& h)>;

// The rest of the layer from the attention's output attn [T, Hq * D]: o_proj, the residual, the
// post-attention norm and the MLP. Fills a.x_mid, a.rstd_post, a.h_post, a.gate, a.up, a.act and
// returns the layer's output [T, hidden]. With `next` (and next_norm, the next layer's input_norm),
// the last residual add also gives the next layer's input norm, into next->h and next->rstd_in
// (one fused op, bit for bit the separate add and norm). With gate_up, a.act comes from it (and
// a.gate, a.up stay undefined).
Tensor layer_attention_outputs(const ModelConfig& config, const LayerParams& p, const Tensor& attn,
                               LayerActivations& a, const ProjectFn& project, const Tensor& next_norm = Tensor(),
                               LayerActivations* next = nullptr, const GateUpFn& gate_up = {});

}  // namespace tessera
