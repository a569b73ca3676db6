#include "model/inference_model.h"

#include <cmath>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/layer_parts.h"

namespace tessera {

namespace {

Tensor ints(const std::vector<int32_t>& v, Device device) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, DType::I32).to(device);
}

// The step's block tables as one int32 [S, max_blocks] tensor (short rows padded with block 0,
// never read).
Tensor block_table_tensor(const std::vector<const BlockTable*>& tables, Device device) {
  size_t width = 1;
  for (const BlockTable* t : tables) width = std::max(width, t->size());
  std::vector<int32_t> flat(tables.size() * width, 0);
  for (size_t s = 0; s < tables.size(); ++s) std::copy(tables[s]->begin(), tables[s]->end(), flat.begin() + s * width);
  return Tensor::from_vector(flat, {static_cast<int64_t>(tables.size()), static_cast<int64_t>(width)}, DType::I32)
      .to(device);
}

Tensor in_dtype(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : ops::cast(t, dtype); }

}  // namespace

ModelParams& OwnedParams::grads(UnitId) { throw Error("inference parameters have no gradients"); }

InferenceModel::InferenceModel(ModelConfig config, std::shared_ptr<ParamSource> source, Device device, DType dtype)
    : config_(std::move(config)), source_(std::move(source)), device_(device), dtype_(dtype),
      rope_(RopeTable::make(config_, device)) {}

DType InferenceModel::cache_dtype() const { return device_.is_cpu() ? DType::F32 : DType::BF16; }

Tensor InferenceModel::step(const StepInput& in, KvCache& cache) {
  const ModelConfig& c = config_;
  const int64_t T = static_cast<int64_t>(in.ids.size()), D = c.head_dim, Hq = c.num_attention_heads,
                S = static_cast<int64_t>(in.block_tables.size()), bs = cache.block_size();
  TS_CHECK(T > 0 && in.seq.size() == in.ids.size() && in.pos.size() == in.ids.size(),
           "InferenceModel::step: {} ids, {} sequence indices, {} positions", T, in.seq.size(), in.pos.size());
  std::vector<int32_t> slots(T);
  for (int64_t t = 0; t < T; ++t) {
    TS_CHECK(in.seq[t] >= 0 && in.seq[t] < S, "InferenceModel::step: token {} of sequence {} (of {})", t, in.seq[t], S);
    TS_CHECK(in.ids[t] >= 0 && in.ids[t] < c.vocab_size, "token id {} is outside the vocabulary of {}", in.ids[t],
             c.vocab_size);
    const BlockTable& table = *in.block_tables[in.seq[t]];
    const int64_t block = in.pos[t] / bs;
    TS_CHECK(in.pos[t] >= 0 && block < static_cast<int64_t>(table.size()),
             "InferenceModel::step: position {} has no KV block ({} reserved)", in.pos[t], table.size());
    slots[t] = static_cast<int32_t>(table[block] * bs + in.pos[t] % bs);
  }
  const Tensor ids = ints(in.ids, device_), positions = ints(in.pos, device_), query_seq = ints(in.seq, device_);
  const Tensor slot_tensor = ints(slots, device_), tables = block_table_tensor(in.block_tables, device_);
  const float scale = static_cast<float>(1.0 / std::sqrt(double(D)));
  const int64_t window = c.sliding_window.value_or(0);
  const DType kv_dtype = cache_dtype();
  // Each token's adapter (-1: the base), when any sequence of the step has one.
  Tensor token_adapter;
  if (!in.adapter.empty()) {
    TS_CHECK(static_cast<int64_t>(in.adapter.size()) == S, "InferenceModel::step: {} adapter indices for {} sequences",
             in.adapter.size(), S);
    const int64_t known = adapters_ ? adapters_->size() : 0;
    std::vector<int32_t> per_token(T);
    bool any = false;
    for (int64_t t = 0; t < T; ++t) {
      const int32_t n = in.adapter[in.seq[t]];
      TS_CHECK(n >= -1 && n < known, "InferenceModel::step: adapter {} of {} loaded", n, known);
      per_token[t] = n;
      any = any || n >= 0;
    }
    if (any) token_adapter = ints(per_token, device_);
  }
  int64_t layer = 0;
  const ProjectFn project = [&](const Linear& l, Projection which, const Tensor& x) {
    Tensor y = l.forward(x);
    if (token_adapter.defined()) {
      const StackedLora& s = adapters_->layers.at(layer)[which];
      if (s.defined()) ops::lora_batched(y, x, s.a, s.b, s.ranks, s.scales, token_adapter);
    }
    return y;
  };

  const bool tied = c.tie_word_embeddings;
  const UnitId embed = UnitId::embed(), head = UnitId::head();
  Tensor x = Tensor::empty({T, c.hidden_size}, dtype_, device_);
  ops::embedding_forward(x, source_->acquire(embed).embed, ids);
  source_->release(embed);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const UnitId unit = UnitId::layer_unit(l);
    layer = l;
    const LayerParams& p = source_->acquire(unit).layers[l];
    LayerActivations a;
    layer_attention_inputs(c, rope_, p, x, positions, a, project);
    Tensor k_cache = cache.keys(l), v_cache = cache.values(l);
    ops::paged_kv_write(in_dtype(a.k, kv_dtype), in_dtype(a.v, kv_dtype), slot_tensor, k_cache, v_cache);
    Tensor attn = Tensor::empty({T, Hq, D}, kv_dtype, device_);
    ops::paged_attention(in_dtype(a.q, kv_dtype), k_cache, v_cache, tables, query_seq, positions, window, scale, attn);
    x = layer_attention_outputs(c, p, in_dtype(attn, dtype_).view({T, Hq * D}), a, project);
    source_->release(unit);
  }

  // Only the rows asked for go through the final norm and the head.
  const int64_t R = static_cast<int64_t>(in.logit_rows.size());
  std::vector<int32_t> rows(R);
  for (int64_t r = 0; r < R; ++r) {
    TS_CHECK(in.logit_rows[r] >= 0 && in.logit_rows[r] < T, "InferenceModel::step: logit row {} of {} tokens",
             in.logit_rows[r], T);
    rows[r] = static_cast<int32_t>(in.logit_rows[r]);
  }
  if (R == 0) return Tensor::empty({0, c.vocab_size}, DType::F32);
  Tensor picked = Tensor::empty({R, c.hidden_size}, dtype_, device_);
  ops::embedding_forward(picked, x, ints(rows, device_));  // a gather of rows
  const ModelParams& h = source_->acquire(head);
  const Tensor& lm_head = tied ? source_->acquire(embed).embed : h.lm_head;
  Tensor normed = Tensor::empty({R, c.hidden_size}, dtype_, device_), rstd = Tensor::empty({R}, DType::F32, device_);
  ops::rmsnorm_forward(normed, rstd, picked, h.final_norm, static_cast<float>(c.rms_norm_eps));
  Tensor logits = Tensor::empty({R, c.vocab_size}, DType::F32, device_);
  ops::gemm(logits, normed, lm_head, false, true);
  if (tied) source_->release(embed);
  source_->release(head);
  return logits.to(Device::cpu());
}

}  // namespace tessera
