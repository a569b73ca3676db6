#include "model/transformer.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/ops.h"
#include "model/layer_parts.h"
#include "model/model_config_rope.h"

namespace tessera {

namespace {

constexpr int64_t kLossChunkTokens = 1024;

Tensor like(const Tensor& t, Shape shape) { return Tensor::empty(std::move(shape), t.dtype(), t.device()); }
Tensor f32_like(const Tensor& t, Shape shape) { return Tensor::empty(std::move(shape), DType::F32, t.device()); }

Tensor rmsnorm(const Tensor& x, const Tensor& w, double eps, Tensor& rstd) {
  const int64_t rows = x.numel() / w.numel();
  Tensor y = like(x, {rows, w.numel()});
  rstd = f32_like(x, {rows});
  ops::rmsnorm_forward(y, rstd, x.view({rows, w.numel()}), w, static_cast<float>(eps));
  return y;
}

Tensor rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dw) {
  const int64_t rows = x.numel() / w.numel();
  Tensor dx = like(x, {rows, w.numel()});
  ops::rmsnorm_backward(dx, dw, dy.view({rows, w.numel()}), x.view({rows, w.numel()}), w, rstd);
  return dx;
}

// The batch's rows of the embedding table on `device`. A table kept in host memory (a frozen
// embedding, lora.frozen_embedding: host) is gathered there into pinned memory and only those
// rows are copied over.
Tensor embed_tokens(const Tensor& table, const TokenBatch& batch, Device device) {
  const int64_t T = batch.tokens(), H = table.size(1);
  Tensor x = Tensor::empty({T, H}, table.dtype(), device);
  if (table.device() == device) {
    ops::embedding_forward(x, table, batch.ids);
    return x;
  }
  TS_CHECK(table.device().is_cpu(), "embedding: the table is on {}, the batch on {}", table.device().str(),
           device.str());
  Tensor rows = Tensor::empty_pinned({T, H}, table.dtype());
  ops::embedding_forward(rows, table, batch.ids.to(Device::cpu()));
  copy_bytes(x, rows);
  return x;
}

float softmax_scale(const ModelConfig& c) { return static_cast<float>(1.0 / std::sqrt(double(c.head_dim))); }

Shape heads_shape(const TokenBatch& b, int64_t heads, int64_t head_dim) { return {b.batch, b.seq, heads, head_dim}; }

// A Philox key of its own for each index under `key`.
uint64_t sub_key(uint64_t key, uint64_t index) {
  const rng::Philox4 r = rng::philox(key, index);
  return static_cast<uint64_t>(r.v[0]) | static_cast<uint64_t>(r.v[1]) << 32;
}

}  // namespace

LoraDropout LayerDropout::for_projection(Projection which, const TokenBatch& batch, int64_t in_features) const {
  if (p == 0.0f) return {};
  return {p, sub_key(key, static_cast<uint64_t>(which)),
          static_cast<uint64_t>(batch.first_token) * static_cast<uint64_t>(in_features)};
}

RopeTable RopeTable::make(const ModelConfig& config, Device device) {
  std::vector<float> inv = rope_inv_freq(config);
  const int64_t n = static_cast<int64_t>(inv.size());
  return {Tensor::from_vector(inv, {n}, DType::F32).to(device), static_cast<float>(rope_attention_factor(config))};
}

void layer_attention_inputs(const ModelConfig& c, const RopeTable& rope, const LayerParams& p, const Tensor& x,
                            const Tensor& positions, LayerActivations& a, const ProjectFn& project) {
  const int64_t T = x.numel() / c.hidden_size, D = c.head_dim, Hq = c.num_attention_heads,
                Hkv = c.num_key_value_heads;
  a.x = x;
  if (!a.h.defined()) a.h = rmsnorm(x, p.input_norm, c.rms_norm_eps, a.rstd_in);
  a.q = project(p.q_proj, kQ, a.h);
  a.k = project(p.k_proj, kK, a.h);
  a.v = project(p.v_proj, kV, a.h);
  if (c.qk_norm) {
    a.q_raw = a.q;
    a.k_raw = a.k;
    a.q = rmsnorm(a.q_raw, p.q_norm, c.rms_norm_eps, a.rstd_q);
    a.k = rmsnorm(a.k_raw, p.k_norm, c.rms_norm_eps, a.rstd_k);
  }
  a.q = a.q.view({T, Hq, D});
  a.k = a.k.view({T, Hkv, D});
  a.v = a.v.view({T, Hkv, D});
  ops::rope_forward_qk(a.q, a.k, positions, rope.inv_freq, rope.attention_scaling);
}

Tensor layer_attention_outputs(const ModelConfig& c, const LayerParams& p, const Tensor& attn, LayerActivations& a,
                               const ProjectFn& project, const Tensor& next_norm, LayerActivations* next,
                               const GateUpFn& gate_up) {
  const int64_t T = a.x.numel() / c.hidden_size;
  Tensor o = project(p.o_proj, kO, attn);
  a.x_mid = like(a.x, {T, c.hidden_size});
  a.h_post = like(a.x, {T, c.hidden_size});
  a.rstd_post = f32_like(a.x, {T});
  ops::add_rmsnorm_forward(a.x_mid, a.h_post, a.rstd_post, a.x.view({T, c.hidden_size}), o, p.post_norm,
                           static_cast<float>(c.rms_norm_eps));
  if (gate_up) {
    a.act = gate_up(p, a.h_post);
  } else {
    a.gate = project(p.gate_proj, kGate, a.h_post);
    a.up = project(p.up_proj, kUp, a.h_post);
    a.act = like(a.x, {T, c.intermediate_size});
    ops::swiglu_forward(a.act, a.gate, a.up);
  }
  Tensor y = project(p.down_proj, kDown, a.act);
  if (next && next_norm.defined()) {
    next->h = like(a.x, {T, c.hidden_size});
    next->rstd_in = f32_like(a.x, {T});
    ops::add_rmsnorm_forward(y, next->h, next->rstd_in, y, a.x_mid, next_norm, static_cast<float>(c.rms_norm_eps));
  } else {
    ops::add(y, y, a.x_mid);
  }
  return y;
}

Tensor layer_forward(const ModelConfig& c, const RopeTable& rope, const LayerParams& p, const Tensor& x,
                     const TokenBatch& batch, LayerActivations* saved, const LayerDropout& dropout) {
  LayerActivations a;
  const int64_t T = batch.tokens(), D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  // Each projection's LoRA x A^T goes where backward finds it, when there is a backward.
  const ProjectFn project = [&](const Linear& l, Projection which, const Tensor& in) {
    return l.forward(in, saved ? &a.lora_xa[which] : nullptr, dropout.for_projection(which, batch, l.in_features()));
  };
  layer_attention_inputs(c, rope, p, x, batch.positions, a, project);
  a.attn = like(x, heads_shape(batch, Hq, D));
  a.lse = f32_like(x, {batch.batch, Hq, batch.seq});
  ops::attention_forward(a.attn, a.lse, a.q.view(heads_shape(batch, Hq, D)), a.k.view(heads_shape(batch, Hkv, D)),
                         a.v.view(heads_shape(batch, Hkv, D)), softmax_scale(c), batch.segment_ids);
  Tensor y = layer_attention_outputs(c, p, a.attn.view({T, Hq * D}), a, project);
  if (saved) *saved = std::move(a);
  return y;
}

Tensor layer_backward(const ModelConfig& c, const RopeTable& rope, const LayerParams& p, LayerParams& g,
                      const Tensor& dy, const TokenBatch& batch, const LayerActivations& a,
                      const LayerDropout& dropout) {
  const int64_t T = batch.tokens(), D = c.head_dim, Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  // dx of projection `which` (= or +=) from its output gradient; its parameter gradients into g.
  auto project_back = [&](const Linear& l, Linear& grads, Projection which, const Tensor& dout, const Tensor& in,
                          const Tensor& dx, bool accumulate) {
    l.backward(dout, in, a.lora_xa[which], grads, dx, accumulate, dropout.for_projection(which, batch, l.in_features()));
  };
  // MLP: y = x_mid + down(silu(gate) * up)
  Tensor dact = like(dy, {T, c.intermediate_size});
  {
    Tensor act = a.act;  // Recompute::norms_swiglu did not keep it
    if (!act.defined()) {
      act = like(a.gate, {T, c.intermediate_size});
      ops::swiglu_forward(act, a.gate, a.up);
    }
    project_back(p.down_proj, g.down_proj, kDown, dy.view({T, c.hidden_size}), act, dact, false);
  }
  Tensor dgate = like(dy, {T, c.intermediate_size}), dup = like(dy, {T, c.intermediate_size});
  ops::swiglu_backward(dgate, dup, dact, a.gate, a.up);
  Tensor dh_post = like(dy, {T, c.hidden_size});
  {
    Tensor h_post = a.h_post, rstd;
    if (!h_post.defined()) h_post = rmsnorm(a.x_mid, p.post_norm, c.rms_norm_eps, rstd);
    project_back(p.gate_proj, g.gate_proj, kGate, dgate, h_post, dh_post, false);
    project_back(p.up_proj, g.up_proj, kUp, dup, h_post, dh_post, true);
  }
  Tensor dx_mid = rmsnorm_backward(dh_post, a.x_mid, p.post_norm, a.rstd_post, g.post_norm);
  ops::add(dx_mid, dx_mid, dy.view({T, c.hidden_size}));
  // Attention: x_mid = x + o_proj(attention(rope(q), rope(k), v))
  Tensor dattn = like(dy, {T, Hq * D});
  project_back(p.o_proj, g.o_proj, kO, dx_mid, a.attn.view({T, Hq * D}), dattn, false);
  Tensor dq = like(dy, heads_shape(batch, Hq, D)), dk = like(dy, heads_shape(batch, Hkv, D));
  Tensor dv = like(dy, heads_shape(batch, Hkv, D));
  ops::attention_backward(dq, dk, dv, dattn.view(heads_shape(batch, Hq, D)), a.q.view(heads_shape(batch, Hq, D)),
                          a.k.view(heads_shape(batch, Hkv, D)), a.v.view(heads_shape(batch, Hkv, D)), a.attn, a.lse,
                          softmax_scale(c), batch.segment_ids);
  ops::rope_backward(dq.view({T, Hq, D}), batch.positions, rope.inv_freq, rope.attention_scaling);
  ops::rope_backward(dk.view({T, Hkv, D}), batch.positions, rope.inv_freq, rope.attention_scaling);
  Tensor dq_raw = dq.view({T, Hq * D}), dk_raw = dk.view({T, Hkv * D});
  if (c.qk_norm) {
    dq_raw = rmsnorm_backward(dq, a.q_raw, p.q_norm, a.rstd_q, g.q_norm).view({T, Hq * D});
    dk_raw = rmsnorm_backward(dk, a.k_raw, p.k_norm, a.rstd_k, g.k_norm).view({T, Hkv * D});
  }
  Tensor dh = like(dy, {T, c.hidden_size});
  {
    Tensor h = a.h, rstd;
    if (!h.defined()) h = rmsnorm(a.x, p.input_norm, c.rms_norm_eps, rstd);
    project_back(p.q_proj, g.q_proj, kQ, dq_raw, h, dh, false);
    project_back(p.k_proj, g.k_proj, kK, dk_raw, h, dh, true);
    project_back(p.v_proj, g.v_proj, kV, dv.view({T, Hkv * D}), h, dh, true);
  }
  Tensor dx = rmsnorm_backward(dh, a.x, p.input_norm, a.rstd_in, g.input_norm);
  ops::add(dx, dx, dx_mid);
  return dx;
}

ModelOutput run_model(const ModelConfig& c, ParamSource& source, const TokenBatch& batch, const RunOptions& options,
                      double* loss_sum_out) {
  const int64_t T = batch.tokens();
  const UnitId embed = UnitId::embed(), head = UnitId::head();
  // Tied embeddings: the head's lm_head lives in the embedding unit.
  const bool tied = c.tie_word_embeddings;

  const ModelParams& e = source.acquire(embed);
  const Device device = batch.ids.device();
  const RopeTable rope = RopeTable::make(c, device);
  Tensor x = embed_tokens(e.embed, batch, device);
  source.release(embed);

  // Dropout only where there is a backward: evaluation and inference see the whole adapter.
  auto dropout = [&](int64_t layer) {
    const PassDropout& d = options.lora_dropout;
    return options.backward && d.p > 0 ? LayerDropout{d.p, sub_key(d.key, static_cast<uint64_t>(layer))}
                                       : LayerDropout{};
  };
  std::vector<LayerActivations> saved(c.num_hidden_layers);
  const bool whole_layers = options.recompute.kind == Recompute::layers;
  const bool keep_all = options.backward && !whole_layers;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const UnitId unit = UnitId::layer_unit(l);
    const LayerParams& p = source.acquire(unit).layers[l];
    // With checkpointing only the layer's input is kept; backward recomputes the rest.
    if (options.backward && whole_layers) saved[l].x = x;
    x = layer_forward(c, rope, p, x, batch, keep_all ? &saved[l] : nullptr, dropout(l));
    if (keep_all && options.recompute.norms_swiglu_in(l)) {
      // layer_backward makes them again from x, x_mid, gate and up.
      saved[l].h = saved[l].h_post = saved[l].act = Tensor();
    }
    source.release(unit);
  }

  const ModelParams& h_params = source.acquire(head);
  const Tensor& lm_head = tied ? source.acquire(embed).embed : h_params.lm_head;
  Tensor rstd_final;
  Tensor h = rmsnorm(x, h_params.final_norm, c.rms_norm_eps, rstd_final);
  ModelOutput out;
  if (options.want_logits) {
    out.logits = Tensor::empty({batch.batch, batch.seq, c.vocab_size}, DType::F32, device);
    ops::gemm(out.logits, h, lm_head, false, true);
  }
  // A batch without targets (chat data: a sequence of user turns only) has loss 0 and gradient 0;
  // it still runs, as every rank's ZeRO collectives must.
  const float grad_scale = options.grad_scale > 0       ? options.grad_scale
                           : batch.num_targets > 0 ? 1.0f / static_cast<float>(batch.num_targets)
                                                   : 0.0f;
  Tensor loss_sum = Tensor::empty({1}, DType::F32, device);
  Tensor dh = options.backward ? Tensor::empty({T, c.hidden_size}, h.dtype(), device) : Tensor();
  Tensor dlm_head = options.backward ? (tied ? source.grads(embed).embed : source.grads(head).lm_head) : Tensor();
  ops::linear_cross_entropy(loss_sum, dh, dlm_head, h, lm_head, batch.labels, grad_scale, kLossChunkTokens);
  const double sum = loss_sum.to(Device::cpu()).data_as<float>()[0];
  out.loss = batch.num_targets > 0 ? sum / static_cast<double>(batch.num_targets) : 0.0;
  if (loss_sum_out) *loss_sum_out = sum;
  if (!options.backward) {
    if (tied) source.release(embed);
    source.release(head);
    return out;
  }

  Tensor dx = rmsnorm_backward(dh, x, h_params.final_norm, rstd_final, source.grads(head).final_norm);
  if (tied) source.release(embed);
  source.release(head);
  source.grads_done(head);
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) {
    const UnitId unit = UnitId::layer_unit(l);
    const LayerParams& p = source.acquire(unit).layers[l];
    if (whole_layers) layer_forward(c, rope, p, saved[l].x, batch, &saved[l], dropout(l));
    dx = layer_backward(c, rope, p, source.grads(unit).layers[l], dx, batch, saved[l], dropout(l));
    saved[l] = LayerActivations();  // free as we go
    source.release(unit);
    source.grads_done(unit);
  }
  const Tensor& dembed = source.grads(embed).embed;
  if (dembed.defined()) ops::embedding_backward(dembed, dx, batch.ids);
  source.grads_done(embed);
  return out;
}

ModelOutput run_model(const ModelConfig& c, const ModelParams& params, const TokenBatch& batch, bool want_logits,
                      ModelParams* grads, bool activation_checkpointing) {
  WholeParams source(params, grads);
  return run_model(c, source, batch,
                   {.want_logits = want_logits, .backward = grads != nullptr,
                    .recompute = activation_checkpointing ? Recompute::layers : Recompute::none});
}

}  // namespace tessera
