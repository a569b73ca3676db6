#include "model/inference_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "core/env_switch.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/stream.h"
#include "kernels/kernel_variant.h"
#include "kernels/launch_overlap.h"
#include "kernels/ops.h"
#include "kernels/stacked_ops.h"
#include "model/layer_parts.h"
#include "model/stacked_projections.h"

namespace tessera {

namespace {

Tensor in_dtype(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : ops::cast(t, dtype); }

// A host buffer of at least `count` elements: `buffer` itself when large enough, else a new one
// (pinned when the model runs on a GPU, so that copies to and from it are asynchronous).
Tensor host_buffer(Tensor& buffer, int64_t count, DType dtype, Device device) {
  if (!buffer.defined() || buffer.numel() < count) {
    const int64_t n = std::max<int64_t>(count, buffer.defined() ? 2 * buffer.numel() : 0);
    buffer = device.is_cuda() ? Tensor::empty_pinned({n}, dtype) : Tensor::empty({n}, dtype);
  }
  return buffer.flat_slice(0, count);
}

// A projection the fused ops take: a dense base of the activations' dtype and nothing plugged in.
bool plain(const Linear& l, DType dtype) {
  return l.weight.defined() && l.weight.dtype() == dtype && !l.packed && !l.has_lora() && !l.fake_quant;
}

// The packed base of a projection the fused packed ops take (one multiplied by gemm_packed, nothing
// plugged in), or null.
const PackedTensor* packed_only(const Linear& l) {
  const bool only = !l.weight.defined() && l.packed && l.packed_matmul == PackedMatmul::gemm_packed && !l.has_lora() &&
                    !l.fake_quant;
  return only ? l.packed.get() : nullptr;
}

}  // namespace

bool fused_decode_default() {
  static const bool on = env_switch("TESSERA_FUSED_DECODE", true);
  return on;
}

// Batch 1 unless TESSERA_NORM_PROLOGUE_ROWS says otherwise: on the H200 (session 10 call B) folding
// took the persistent gemv's 1B batch-1 step from 1.148 ms to 1.111 (split forms, folded: 1.078 -
// 1.099; 8B 5.33 - 5.47 ms against 6.03 unfolded in rows); at batch 4 the folded split4 step
// (1.704 ms) lost to the unfolded rows form (1.644).
int norm_prologue_rows_default() {
  static const int rows = env_choice("TESSERA_NORM_PROLOGUE_ROWS", {0, 1, 2, 3, 4}, false, 1);
  return rows;
}

// From 5 rows (bucket 8 up): on the H200 (session 12 call B, stacked from 3 rows against none) 1B
// batch 16 went from 1.370 to 1.159 ms a step (+18%), batch 64 1.623 -> 1.390, batch 256 2.757 ->
// 2.567, 8B batch 16 5.466 -> 4.986; batch 4 lost (1.423 -> 1.505: the gemv took q/k/v in one
// launch already), so it stays as it was.
int stacked_rows_default() {
  static const int rows = env_choice("TESSERA_STACKED_ROWS", {0, 1, 2, 3, 4, 5, 8, 16, 32, 64}, false, 5);
  return rows;
}

OwnedParams::OwnedParams(ModelParams params) : params_(std::move(params)) { stack_projections(params_); }

ModelParams& OwnedParams::grads(UnitId) { throw Error("inference parameters have no gradients"); }

InferenceModel::InferenceModel(ModelConfig config, std::shared_ptr<ParamSource> source, Device device, DType dtype,
                               InferenceOptions options)
    : config_(std::move(config)), source_(std::move(source)), device_(device), dtype_(dtype), options_(options),
      rope_(RopeTable::make(config_, device)) {}

InferenceModel::~InferenceModel() = default;

void InferenceModel::set_options(const InferenceOptions& options) {
  options_ = options;
  graphs_.clear();
}

void InferenceModel::set_adapters(std::shared_ptr<const AdapterBank> adapters) {
  adapters_ = std::move(adapters);
  graphs_.clear();  // captured without (or with other) adapters
}

void InferenceModel::quantize_lm_head(const QuantSpec& spec) {
  const bool tied = config_.tie_word_embeddings;
  const UnitId unit = tied ? UnitId::embed() : UnitId::head();
  const ModelParams& p = source_->acquire(unit);
  const Tensor& head = tied ? p.embed : p.lm_head;
  if (!head.defined()) {
    source_->release(unit);
    fail("lm_head: the checkpoint stores it packed, with no dense copy to quantize again as {} (it runs as stored "
         "without --lm-head-quant / lm_head_quant)", quant_scheme_name(spec.scheme));
  }
  auto packed = std::make_shared<PackedTensor>(PackedTensor::empty(resolve_quant_spec(spec, head.shape()), head.shape(), device_));
  ops::quantize(*packed, head);
  source_->release(unit);
  use_packed_lm_head(std::move(packed));
}

void InferenceModel::use_packed_lm_head(std::shared_ptr<const PackedTensor> head) {
  const Shape want{config_.vocab_size, config_.hidden_size};
  TS_CHECK(head->shape == want && head->device() == device_, "lm_head: packed {} given, the model needs [{}, {}] on {}",
           head->str(), want[0], want[1], device_.str());
  spdlog::info("inference: lm_head packed as {} ({:.0f} MB, bf16 {:.0f} MB)", quant_scheme_name(head->spec.scheme),
               head->nbytes() / 1e6, head->numel() * 2 / 1e6);
  packed_lm_head_ = std::move(head);
  graphs_.clear();  // captured with the dense head
}

DType InferenceModel::cache_dtype() const { return device_.is_cpu() ? DType::F32 : DType::BF16; }

int64_t InferenceModel::graphs_captured() const {
  int64_t n = 0;
  for (const auto& [key, g] : graphs_) n += g->graph.ready();
  return n;
}

// The step's packed inputs in a host buffer (pinned on a GPU), checked.
Tensor InferenceModel::staged(const StepInput& in, const StepLayout& layout, KvCache& cache) {
  Tensor host = host_buffer(host_inputs_, layout.size(), DType::I32, device_);
  pack_step(in, layout, cache.block_size(), config_.vocab_size, host.data_as<int32_t>(),
            adapters_ ? adapters_->size() : 0);
  return host;
}

// Its time also leaves `parent`'s (an op family timed inside another).
struct InferenceModel::Mark {
  std::string name, parent;
  Event start{true}, end{true};
};

template <typename Fn>
decltype(auto) InferenceModel::timed(std::string_view name, std::string_view parent, Fn&& fn) {
  if (!options_.profile_ops || !device_.is_cuda()) return fn();
  const Stream stream = current_stream(device_.index);
  marks_.push_back(std::make_unique<Mark>(Mark{std::string(name), std::string(parent)}));
  Mark& mark = *marks_.back();  // fn may add marks of its own
  mark.start.record(stream);
  if constexpr (std::is_void_v<decltype(fn())>) {
    fn();
    mark.end.record(stream);
  } else {
    decltype(auto) result = fn();
    mark.end.record(stream);
    return result;
  }
}

bool InferenceModel::stacks(int64_t tokens) const {
  return options_.stacked_rows > 0 && tokens >= options_.stacked_rows;
}

bool InferenceModel::folds_norms(const LayerParams& p, int64_t tokens) const {
  if (tokens > options_.norm_prologue_rows) return false;
  const Linear* all[] = {&p.q_proj, &p.k_proj, &p.v_proj, &p.o_proj, &p.gate_proj, &p.up_proj, &p.down_proj};
  for (const Linear* l : all)
    if (!plain(*l, dtype_)) return false;
  if (p.gate_proj.bias.defined() || p.up_proj.bias.defined()) return false;
  // The projections that norm their input, and the two that add the residual.
  for (const Linear* l : {&p.q_proj, &p.k_proj, &p.v_proj, &p.gate_proj, &p.up_proj})
    if (!ops::folds_into_gemv(tokens, l->weight, true)) return false;
  return ops::folds_into_gemv(tokens, p.o_proj.weight, false) && ops::folds_into_gemv(tokens, p.down_proj.weight, false);
}

Tensor InferenceModel::fused_attention_inputs(const LayerParams& p, const Tensor& x, const Tensor& positions,
                                            const Tensor& slots, Tensor& k_cache, Tensor& v_cache, LayerActivations& a,
                                            const ProjectFn& project, bool rope, bool fold) {
  const ModelConfig& c = config_;
  const int64_t T = x.numel() / c.hidden_size, D = c.head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  a.x = x;
  const bool prologue = fold && !a.h.defined();  // else the previous layer made a.h
  if (!a.h.defined() && !prologue) {
    a.h = Tensor::empty({T, c.hidden_size}, dtype_, device_);
    a.rstd_in = Tensor::empty({T}, DType::F32, device_);
    ops::rmsnorm_forward(a.h, a.rstd_in, x.view({T, c.hidden_size}), p.input_norm, eps);
  }
  const Linear* qkv[] = {&p.q_proj, &p.k_proj, &p.v_proj};
  const bool all_plain = std::all_of(std::begin(qkv), std::end(qkv), [&](const Linear* l) { return plain(*l, dtype_); });
  if (all_plain && !rope && !prologue && stacks(T)) {
    const Tensor* weights[] = {&p.q_proj.weight, &p.k_proj.weight, &p.v_proj.weight};
    const Tensor* biases[] = {&p.q_proj.bias, &p.k_proj.bias, &p.v_proj.bias};
    const Tensor w = stacked_view(weights), b = stacked_view(biases);
    const bool any_bias = std::any_of(std::begin(biases), std::end(biases), [](const Tensor* t) { return t->defined(); });
    if (w.defined() && (b.defined() || !any_bias)) {
      Tensor stacked = Tensor::empty({T, w.size(0)}, dtype_, device_);
      timed("qkv_proj", "norm_rope", [&] { ops::gemm(stacked, a.h, w, false, true, 1.0f, 0.0f, b); });
      return stacked.view({T, c.num_attention_heads + 2 * c.num_key_value_heads, D});
    }
  }
  if (all_plain) {
    Tensor outs[3], weights[3], biases[3];
    for (int i = 0; i < 3; ++i) {
      outs[i] = Tensor::empty({T, qkv[i]->out_features()}, dtype_, device_);
      weights[i] = qkv[i]->weight;
      biases[i] = qkv[i]->bias;
    }
    if (prologue) {
      timed("norm_qkv_proj", "norm_rope", [&] {
        ops::project_many(outs, x.view({T, c.hidden_size}), weights, biases, InputNorm{p.input_norm, eps});
      });
    } else {
      timed("qkv_proj", "norm_rope", [&] { ops::project_many(outs, a.h, weights, biases); });
    }
    a.q = outs[0];
    a.k = outs[1];
    a.v = outs[2];
  } else if (std::all_of(std::begin(qkv), std::end(qkv), [&](const Linear* l) { return packed_only(*l); })) {
    Tensor outs[3], biases[3];
    const PackedTensor* weights[3];
    for (int i = 0; i < 3; ++i) {
      outs[i] = Tensor::empty({T, qkv[i]->out_features()}, dtype_, device_);
      weights[i] = packed_only(*qkv[i]);
      biases[i] = qkv[i]->bias;
    }
    timed("qkv_proj", "norm_rope", [&] { ops::project_many_packed(outs, a.h, weights, biases); });
    a.q = outs[0];
    a.k = outs[1];
    a.v = outs[2];
  } else {
    a.q = project(p.q_proj, kQ, a.h);
    a.k = project(p.k_proj, kK, a.h);
    a.v = project(p.v_proj, kV, a.h);
  }
  a.q = a.q.view({T, c.num_attention_heads, D});
  a.k = a.k.view({T, c.num_key_value_heads, D});
  a.v = a.v.view({T, c.num_key_value_heads, D});
  if (!rope) return Tensor();
  timed("rope_kv_write", "norm_rope", [&] {
    ops::rope_kv_write(a.q, a.k, a.v, positions, rope_.inv_freq, rope_.attention_scaling,
                       c.qk_norm ? p.q_norm : Tensor(), c.qk_norm ? p.k_norm : Tensor(), eps, slots, k_cache, v_cache);
  });
  return Tensor();
}

Tensor InferenceModel::folded_attention_outputs(const LayerParams& p, const Tensor& attn, LayerActivations& a) {
  const ModelConfig& c = config_;
  const int64_t T = attn.size(0);
  const Tensor x = a.x.view({T, c.hidden_size});
  a.x_mid = Tensor::empty({T, c.hidden_size}, dtype_, device_);
  timed("o_proj_add", "norms_swiglu", [&] { ops::project_add(a.x_mid, attn, p.o_proj.weight, x, p.o_proj.bias); });
  a.act = Tensor::empty({T, c.intermediate_size}, dtype_, device_);
  const InputNorm post{p.post_norm, static_cast<float>(c.rms_norm_eps)};
  timed("norm_gate_up_swiglu", "norms_swiglu",
        [&] { ops::project_swiglu(a.act, a.x_mid, p.gate_proj.weight, p.up_proj.weight, post); });
  Tensor y = Tensor::empty({T, c.hidden_size}, dtype_, device_);
  timed("down_proj_add", "norms_swiglu",
        [&] { ops::project_add(y, a.act, p.down_proj.weight, a.x_mid, p.down_proj.bias); });
  return y;
}

InferenceModel::Outputs InferenceModel::forward(const Tensor& inputs, const StepLayout& L, KvCache& cache,
                                                bool decode) {
  const ModelConfig& c = config_;
  const int64_t T = L.tokens, D = c.head_dim, Hq = c.num_attention_heads, R = L.rows;
  const Tensor ids = inputs.flat_slice(L.ids(), T), positions = inputs.flat_slice(L.pos(), T);
  const Tensor query_seq = inputs.flat_slice(L.seq(), T), slots = inputs.flat_slice(L.slots(), T);
  const Tensor rows = inputs.flat_slice(L.logit_rows(), R);
  const Tensor tables = inputs.flat_slice(L.tables(), L.seqs * L.width).view({L.seqs, L.width});
  const float scale = static_cast<float>(1.0 / std::sqrt(double(D)));
  const int64_t window = c.sliding_window.value_or(0);
  const DType kv_dtype = cache_dtype();
  // Each token's adapter (-1: the base), for a model with adapters.
  const Tensor token_adapter = L.adapters ? inputs.flat_slice(L.adapter(), T) : Tensor();
  int64_t layer = 0;
  const ProjectFn project = [&](const Linear& l, Projection which, const Tensor& x) {
    const std::string_view path = projection_path(which);  // "self_attn.q_proj": timed as "q_proj"
    Tensor y = timed(path.substr(path.find('.') + 1), which <= kV ? "norm_rope" : "norms_swiglu",
                     [&] { return l.forward(x); });
    if (token_adapter.defined()) {
      const StackedLora& s = adapters_->layers.at(layer)[which];
      if (s.defined()) ops::lora_batched(y, x, s.a, s.b, s.ranks, s.scales, token_adapter);
    }
    return y;
  };

  // With the weights held whole and fixed, the step's kernels may overlap their predecessors
  // (unless TESSERA_PDL=0: kernels/launch_overlap.h).
  const ops::LaunchOverlap overlap(ops::LaunchOverlap::requested() && device_.is_cuda() && source_->fixed_addresses());
  const bool tied = c.tie_word_embeddings;
  const UnitId embed = UnitId::embed(), head = UnitId::head();
  Tensor x = Tensor::empty({T, c.hidden_size}, dtype_, device_);
  timed("embedding", "", [&] { ops::embedding_forward(x, source_->acquire(embed).embed, ids); });
  source_->release(embed);
  // With weights held whole, each layer's last residual add also makes the next layer's input
  // norm (one launch instead of two).
  const bool fuse_norms = source_->fixed_addresses();
  // The fused decode ops write the cache in the activations' dtype and know nothing of adapters.
  const bool fused = options_.fused_decode && !adapters_ && dtype_ == kv_dtype;
  // A decode step's RoPE and KV write go into its attention (ops::rope_paged_attention).
  const bool rope_in_attention = fused && decode;
  const GateUpFn gate_up = [&](const LayerParams& p, const Tensor& h) {
    Tensor act = Tensor::empty({T, c.intermediate_size}, dtype_, device_);
    const Tensor* weights[] = {&p.gate_proj.weight, &p.up_proj.weight};
    if (const Tensor w = stacks(T) ? stacked_view(weights) : Tensor(); w.defined()) {
      Tensor both = Tensor::empty({T, w.size(0)}, dtype_, device_);
      timed("gate_up_swiglu", "norms_swiglu", [&] {
        ops::gemm(both, h, w, false, true);
        ops::swiglu_stacked(act, both);
      });
      return act;
    }
    timed("gate_up_swiglu", "norms_swiglu", [&] { ops::project_swiglu(act, h, p.gate_proj.weight, p.up_proj.weight); });
    return act;
  }, unfused_mlp;
  const GateUpFn gate_up_packed = [&](const LayerParams& p, const Tensor& h) {
    Tensor act = Tensor::empty({T, c.intermediate_size}, dtype_, device_);
    timed("gate_up_swiglu", "norms_swiglu",
          [&] { ops::project_swiglu_packed(act, h, *packed_only(p.gate_proj), *packed_only(p.up_proj)); });
    return act;
  };
  LayerActivations next;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const UnitId unit = UnitId::layer_unit(l);
    layer = l;
    const LayerParams& p = source_->acquire(unit).layers[l];
    LayerActivations a;
    a.h = std::move(next.h);
    a.rstd_in = std::move(next.rstd_in);
    next = {};
    Tensor k_cache = cache.keys(l), v_cache = cache.values(l);
    const bool fold = fused && folds_norms(p, T);
    Tensor stacked_qkv;  // one gemm's q/k/v rows, for the attention to read in place
    if (fused) {
      timed("norm_rope", "", [&] {
        stacked_qkv =
            fused_attention_inputs(p, x, positions, slots, k_cache, v_cache, a, project, !rope_in_attention, fold);
      });
    } else {
      timed("norm_rope", "", [&] { layer_attention_inputs(c, rope_, p, x, positions, a, project); });
      timed("kv_write", "", [&] {
        ops::paged_kv_write(in_dtype(a.k, kv_dtype), in_dtype(a.v, kv_dtype), slots, k_cache, v_cache);
      });
    }
    Tensor attn = Tensor::empty({T, Hq, D}, kv_dtype, device_);
    const Tensor q_norm = c.qk_norm ? p.q_norm : Tensor(), k_norm = c.qk_norm ? p.k_norm : Tensor();
    const float eps = static_cast<float>(c.rms_norm_eps);
    timed("attention", "", [&] {
      if (stacked_qkv.defined())
        ops::rope_paged_attention_stacked(stacked_qkv, positions, rope_.inv_freq, rope_.attention_scaling, q_norm,
                                          k_norm, eps, slots, k_cache, v_cache, tables, query_seq, window, scale, attn);
      else if (rope_in_attention)
        ops::rope_paged_attention(a.q, a.k, a.v, positions, rope_.inv_freq, rope_.attention_scaling, q_norm, k_norm,
                                  eps, slots, k_cache, v_cache, tables, query_seq, window, scale, attn);
      else
        ops::paged_attention(in_dtype(a.q, kv_dtype), k_cache, v_cache, tables, query_seq, positions, window, scale,
                             attn);
    });
    Tensor next_norm;
    if (fuse_norms && !fold && l + 1 < c.num_hidden_layers) {
      next_norm = source_->acquire(UnitId::layer_unit(l + 1)).layers[l + 1].input_norm;
      source_->release(UnitId::layer_unit(l + 1));
    }
    x = timed("norms_swiglu", "", [&] {
      if (fold) return folded_attention_outputs(p, in_dtype(attn, dtype_).view({T, Hq * D}), a);
      const bool no_bias = !p.gate_proj.bias.defined() && !p.up_proj.bias.defined();
      const bool plain_mlp = no_bias && plain(p.gate_proj, dtype_) && plain(p.up_proj, dtype_);
      const bool packed_mlp = no_bias && packed_only(p.gate_proj) && packed_only(p.up_proj);
      return layer_attention_outputs(c, p, in_dtype(attn, dtype_).view({T, Hq * D}), a, project, next_norm, &next,
                                     !fused         ? unfused_mlp
                                     : plain_mlp    ? gate_up
                                     : packed_mlp   ? gate_up_packed
                                                    : unfused_mlp);
    });
    source_->release(unit);
  }

  // Only the logit rows go through the final norm and the head.
  Outputs out;
  out.logits = Tensor::empty({R, c.vocab_size}, DType::F32, device_);
  out.index = Tensor::empty({R}, DType::I32, device_);
  out.logprob = Tensor::empty({R}, DType::F32, device_);
  if (R == 0) return out;
  Tensor picked = Tensor::empty({R, c.hidden_size}, dtype_, device_);
  timed("final_norm", "", [&] { ops::embedding_forward(picked, x, rows); });  // a gather of rows
  const ModelParams& h = source_->acquire(head);
  Tensor normed = Tensor::empty({R, c.hidden_size}, dtype_, device_), rstd = Tensor::empty({R}, DType::F32, device_);
  timed("final_norm", "", [&] {
    ops::rmsnorm_forward(normed, rstd, picked, h.final_norm, static_cast<float>(c.rms_norm_eps));
  });
  if (packed_lm_head_) {
    timed("lm_head", "", [&] { ops::gemm_packed(out.logits, normed, *packed_lm_head_, true); });
  } else {
    const Tensor& lm_head = tied ? source_->acquire(embed).embed : h.lm_head;
    timed("lm_head", "", [&] { ops::gemm(out.logits, normed, lm_head, false, true); });
    if (tied) source_->release(embed);
  }
  source_->release(head);
  const Tensor sampling = inputs.flat_slice(L.sampling(), 8 * R).view({R, 8});
  timed("sample", "", [&] { ops::sample_rows(out.index, out.logprob, out.logits, sampling); });
  return out;
}

// A decode step through the CUDA graph of its shape: the inputs go into the graph's own buffer and
// the graph is replayed; the first step of a shape runs eagerly on that buffer (warming every lazy
// initialisation and the allocator's cache for the capture) and then captures it.
InferenceModel::Outputs InferenceModel::decode_with_graph(const Tensor& host_inputs, const StepLayout& L,
                                                          KvCache& cache, bool& replayed) {
  const GraphKey key{L.tokens, L.width, cache.keys(0).data()};
  std::unique_ptr<Graph>& g = graphs_[key];
  const Stream stream = current_stream(device_.index);
  if (g && g->graph.ready()) {
    copy_bytes(g->inputs, host_inputs, /*async=*/true);
    g->graph.replay(stream);
    replayed = true;
    return g->out;
  }
  if (!g) {
    g = std::make_unique<Graph>();
    g->inputs = Tensor::empty({L.size()}, DType::I32, device_);
  }
  copy_bytes(g->inputs, host_inputs, /*async=*/true);
  Outputs eager = forward(g->inputs, L, cache, true);
  if (!g->failed) {
    try {
      g->graph.capture(stream, [&] { g->out = forward(g->inputs, L, cache, true); });
      spdlog::debug("generate: captured the decode step of {} sequences (tables {} blocks wide) in a CUDA graph",
                    L.tokens, L.width);
    } catch (const std::exception& e) {
      g->failed = true;
      g->out = {};
      if (!capture_failure_logged_)
        spdlog::warn("generate: decode steps run without CUDA graphs: capturing one failed: {}", e.what());
      capture_failure_logged_ = true;
    }
  }
  return eager;
}

StepOutput InferenceModel::fetch(const StepInput& in, const Outputs& out) {
  const int64_t R = static_cast<int64_t>(in.logit_rows.size()), V = config_.vocab_size;
  StepOutput result;
  result.logits_row.assign(R, -1);
  int64_t full = 0;
  for (int64_t r = 0; r < R; ++r)
    if (in.full_logits.empty() || in.full_logits[r]) result.logits_row[r] = full++;
  // Everything queued on the stream, then one wait.
  Tensor picks = host_buffer(host_picks_, 2 * R, DType::I32, device_);
  copy_bytes(picks.flat_slice(0, R), out.index.flat_slice(0, R), /*async=*/true);
  copy_bytes(picks.flat_slice(R, R), out.logprob.flat_slice(0, R).view({R}), /*async=*/true);
  if (full > 0) {
    Tensor host = host_buffer(host_logits_, full * V, DType::F32, device_);
    if (full == R) {
      copy_bytes(host, out.logits.flat_slice(0, R * V), /*async=*/true);
    } else {
      for (int64_t r = 0; r < R; ++r)
        if (result.logits_row[r] >= 0)
          copy_bytes(host.flat_slice(result.logits_row[r] * V, V), out.logits.flat_slice(r * V, V), /*async=*/true);
    }
    result.logits = host.view({full, V});
  } else {
    result.logits = Tensor::empty({0, V}, DType::F32);
  }
  synchronize_device(device_);
  const int32_t* p = picks.data_as<int32_t>();
  result.token.assign(p, p + R);
  result.logprob.resize(R);
  std::memcpy(result.logprob.data(), p + R, R * sizeof(float));
  return result;
}

StepOutput InferenceModel::run(const StepInput& in, KvCache& cache) {
  const bool decode = is_decode_step(in);
  const bool profiling = options_.profile_ops && device_.is_cuda();
  const bool graphs = decode && options_.cuda_graphs && !profiling && device_.is_cuda() && source_->fixed_addresses();
  StepLayout layout = exact_layout(in);
  if (graphs || (decode && options_.pad_decode))
    layout = padded_decode_layout(decode_bucket(layout.tokens), decode_width(layout.width));
  layout.adapters = adapters_ != nullptr;
  const auto began = std::chrono::steady_clock::now();
  const Tensor host = staged(in, layout, cache);
  Event start(true), end(true);
  marks_.clear();
  if (profiling) hold_stream(current_stream(device_.index), 20.0);
  if (device_.is_cuda()) start.record(current_stream(device_.index));
  Outputs out;
  if (graphs) {
    bool replayed = false;
    out = decode_with_graph(host, layout, cache, replayed);
    times_.graph_replays += replayed;
  } else {
    Tensor inputs = device_.is_cuda() ? Tensor::empty({layout.size()}, DType::I32, device_) : host;
    if (device_.is_cuda()) copy_bytes(inputs, host, /*async=*/true);
    out = forward(inputs, layout, cache, decode);
  }
  if (device_.is_cuda()) end.record(current_stream(device_.index));
  StepOutput result = fetch(in, out);
  if (device_.is_cuda()) result.gpu_ms = elapsed_ms(start, end);
  for (const auto& m : marks_) {
    const double ms = elapsed_ms(m->start, m->end);
    times_.op_ms[m->name] += ms;
    if (!m->parent.empty()) times_.op_ms[m->parent] -= ms;
  }
  ++times_.steps;
  times_.decode_steps += decode;
  times_.gpu_ms += result.gpu_ms;
  times_.run_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
  return result;
}

Tensor InferenceModel::step(const StepInput& input, KvCache& cache) {
  StepInput in = input;
  in.full_logits.clear();
  return run(in, cache).logits.clone();
}

}  // namespace tessera
