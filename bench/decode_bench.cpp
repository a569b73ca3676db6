// Greedy decoding through the inference engine (Generator: continuous batching, paged KV cache) on
// one GPU, random bf16 weights of a Llama shape, the same call as shared/peers/torch_peer_decode.py.
// bench/decode_bench [--shape 1b|8b] [--batch 1] [--prompt 128] [--new 128] [--graphs 1|0]
//                    [--scheme bf16|int8|int4|q8_0|q4_0|nf4] [--lm-head bf16|int8|int4|q8_0|q4_0]
//                    [--profile 0|1]
// --scheme: every projection quantized at start (int4: groups of 32, symmetric) and kept packed, as
// a quantized checkpoint loads for inference (the embedding and lm_head stay bf16). --lm-head:
// the logits' product against a packed copy of lm_head (InferenceModel::quantize_lm_head).
// Prints RESULT {json}: prefill seconds and prompt tokens/s, decode tokens/s (batch / time per
// step after the first token), the weights read per second, and where a decode step's time goes:
// wall time per step (the whole engine: scheduler, sampler, model), the model's run() per step,
// and the device time per step (CUDA events around the step's queued work).
// --profile 1: steps run eagerly with CUDA events around each op family (InferenceOptions::
// profile_ops) and, after RESULT, one line per family: PROFILE | shape batch | op | ms per decode
// step | share of the step | weight GB/s (projections and lm_head, bf16) |. With the fused decode ops
// (TESSERA_FUSED_DECODE, on unless 0) q/k/v show as qkv_proj, gate/up and the SwiGLU as
// gate_up_swiglu, RoPE with the KV write as rope_kv_write, except in decode steps, where they are
// timed inside attention (ops::rope_paged_attention: one launch with TESSERA_PAGED_ATTN=v3, whose
// value RESULT's paged_attn shows). With the norms folded into the projections
// (TESSERA_NORM_PROLOGUE_ROWS, decode steps of up to that many rows, 1 unless set) the decode steps' show as
// norm_qkv_proj, o_proj_add, norm_gate_up_swiglu and down_proj_add. With the stacked projections
// (TESSERA_STACKED_ROWS=N: steps of at least N rows, 5 unless set, RESULT's stacked_rows) qkv_proj and
// gate_up_swiglu are one gemm each (and the SwiGLU's launch).
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>

#include "one_batch.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/stream.h"
#include "engine/inference/generator.h"
#include "engine/model_loader.h"
#include "kernels/gemv_form.h"
#include "kernels/launch_overlap.h"
#include "kernels/ops.h"
#include "model/inference_model.h"
#include "model/model_config_params.h"

using namespace tessera;

int main(int argc, char** argv) {
  try {
    std::string shape = "1b";
    int64_t batch = 1, prompt = 128, fresh = 128;
    bool graphs = true;
    std::string scheme = "bf16", lm_head = "bf16";
    bool profile = false;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string key = argv[i], value = argv[i + 1];
      if (key == "--shape") shape = value;
      else if (key == "--batch") batch = std::stoll(value);
      else if (key == "--prompt") prompt = std::stoll(value);
      else if (key == "--new") fresh = std::stoll(value);
      else if (key == "--graphs") graphs = value != "0";
      else if (key == "--scheme") scheme = value;
      else if (key == "--profile") profile = value != "0";
      else if (key == "--lm-head") lm_head = value;
      else throw Error("decode_bench: unknown argument " + key);
    }
    TS_CHECK(cuda_device_count() > 0, "decode_bench needs a GPU: {}", cuda_unavailable_reason());
    TS_CHECK(shape == "1b" || shape == "8b", "--shape: 1b or 8b");
    TS_CHECK(batch > 0 && prompt > 0 && fresh > 1, "--batch and --prompt must be positive, --new at least 2");
    const Device gpu = Device::cuda(0);
    const bool big = shape == "8b";
    const ModelConfig config = ModelConfig::from_json(
        nlohmann::json{{"model_type", "llama"}, {"hidden_size", big ? 4096 : 2048},
                       {"intermediate_size", big ? 14336 : 8192}, {"num_hidden_layers", big ? 32 : 16},
                       {"num_attention_heads", 32}, {"num_key_value_heads", 8}, {"vocab_size", 128256},
                       {"max_position_embeddings", 8192}, {"tie_word_embeddings", !big}, {"rope_theta", 500000.0}},
        "decode_bench");
    ModelParams params = make_params(config, DType::BF16, gpu, false);
    uint64_t offset = 0;
    int64_t weight_bytes = 0;
    for_each_param(config, params, [&](const std::string&, Tensor& t) {
      ops::fill_normal(t, 7, offset, 0.0f, 0.02f);
      offset += t.numel();
      weight_bytes += t.numel() * 2;
    });
    if (scheme != "bf16") {
      const QuantScheme packed_scheme = parse_quant_scheme(scheme);
      for (LayerParams& layer : params.layers)
        for (int p = 0; p < kProjections; ++p) {
          Linear& l = projection(layer, Projection(p));
          const PackedTensor w = PackedTensor::empty(resolve_quant_spec({packed_scheme}, l.weight.shape()),
                                                     l.weight.shape(), gpu);
          ops::quantize(w, l.weight);
          weight_bytes += w.nbytes() - l.weight.numel() * 2;
          set_packed_base(l, w, gpu);
        }
    }
    auto model = std::make_shared<InferenceModel>(config, std::make_shared<OwnedParams>(std::move(params)), gpu, DType::BF16,
                                                  InferenceOptions{.cuda_graphs = graphs, .profile_ops = profile});
    if (lm_head != "bf16") {
      model->quantize_lm_head({parse_quant_scheme(lm_head)});
      weight_bytes += model->packed_lm_head()->nbytes() - config.vocab_size * config.hidden_size * 2;
    }
    inference::Generator generator(model, nullptr, one_batch_options(batch, prompt, fresh));
    auto requests = [&](int64_t n) {
      std::vector<inference::Request> out(batch);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < prompt; ++t) out[b].prompt.push_back(static_cast<int32_t>((b * 7919 + t * 104729) % 128256));
        out[b].sampling.temperature = 0;
        out[b].max_new_tokens = n;
        out[b].ignore_eos = true;
      }
      return out;
    };
    auto timed = [&](int64_t n) {
      synchronize_device(gpu);
      const auto start = std::chrono::steady_clock::now();
      inference::generate_all(generator, requests(n));
      synchronize_device(gpu);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    timed(8);  // warm-up (and the CUDA graphs' captures)
    model->reset_timings();
    const double first = timed(1);
    const StepTimes t1 = model->timings();
    model->reset_timings();
    const double all = timed(fresh);
    const StepTimes tn = model->timings();
    const double step = (all - first) / double(fresh - 1);
    const double decode_steps = double(tn.steps - t1.steps);
    const char* paged_attn = std::getenv("TESSERA_PAGED_ATTN");
    const char* packed_gemv = std::getenv("TESSERA_PACKED_GEMV");  // the packed schemes' variant
    const char* stream_depth = std::getenv("TESSERA_PACKED_STREAM_DEPTH");
    const char* stream_chains = std::getenv("TESSERA_PACKED_STREAM_CHAINS");
    const char* tile_warps = std::getenv("TESSERA_PACKED_STREAM_TILE_WARPS");
    const char* stream_symmetric = std::getenv("TESSERA_PACKED_STREAM_SYMMETRIC");
    std::printf("RESULT {\"what\":\"tessera_generate\",\"shape\":\"%s\",\"scheme\":\"%s\",\"lm_head\":\"%s\",\"batch\":%ld,\"prompt\":%ld,\"new_tokens\":%ld,"
                "\"graphs\":%d,\"fused\":%d,\"norm_prologue_rows\":%d,\"stacked_rows\":%d,\"small_m\":\"%s\",\"gemv\":\"%s\",\"gemv_blocks_per_sm\":%d,\"pdl\":%d,\"paged_attn\":\"%s\",\"packed_gemv\":\"%s\",\"stream_depth\":\"%s\",\"stream_chains\":\"%s\",\"stream_tile_warps\":\"%s\",\"stream_symmetric\":\"%s\",\"profile\":%d,\"prefill_s\":%.4f,\"prefill_tok_per_s\":%.0f,\"decode_tok_per_s\":%.1f,"
                "\"wall_ms_per_step\":%.3f,\"run_ms_per_step\":%.3f,\"gpu_ms_per_step\":%.3f,\"graph_replays\":%ld,"
                "\"decode_steps\":%.0f,\"weight_gb\":%.2f,\"weight_read_tb_per_s\":%.2f,\"peak_mem_gib\":%.2f}\n",
                shape.c_str(), scheme.c_str(), lm_head.c_str(), batch, prompt, fresh, graphs ? 1 : 0,
                model->options().fused_decode ? 1 : 0, model->options().norm_prologue_rows, model->options().stacked_rows,
                ops::small_m_kernel_name(ops::small_m_choice().kernel), ops::gemv_form_name(ops::gemv_form()),
                ops::gemv_blocks_per_sm(), ops::LaunchOverlap::requested() ? 1 : 0, paged_attn ? paged_attn : "default",
                packed_gemv && *packed_gemv ? packed_gemv : "auto", stream_depth && *stream_depth ? stream_depth : "default",
                stream_chains && *stream_chains ? stream_chains : "default",
                tile_warps && *tile_warps ? tile_warps : "default",
                stream_symmetric && *stream_symmetric ? stream_symmetric : "default",
                profile ? 1 : 0, first, double(batch * prompt) / first,
                double(batch) / step, step * 1e3, (tn.run_ms - t1.run_ms) / decode_steps,
                (tn.gpu_ms - t1.gpu_ms) / decode_steps, tn.graph_replays, decode_steps, weight_bytes / 1e9,
                weight_bytes / step / 1e12, memory_stats(gpu).peak_allocated / 1073741824.0);
    if (profile) {
      // Weight bytes each projection reads per decode step (bf16).
      const int64_t H = config.hidden_size, I = config.intermediate_size, L = config.num_hidden_layers;
      const int64_t q = config.num_attention_heads * config.head_dim, kv = config.num_key_value_heads * config.head_dim;
      const std::map<std::string, int64_t> weights = {
          {"q_proj", L * q * H * 2}, {"k_proj", L * kv * H * 2}, {"v_proj", L * kv * H * 2}, {"o_proj", L * H * q * 2},
          {"gate_proj", L * I * H * 2}, {"up_proj", L * I * H * 2}, {"down_proj", L * H * I * 2},
          {"qkv_proj", L * (q + 2 * kv) * H * 2}, {"gate_up_swiglu", L * 2 * I * H * 2},
          {"norm_qkv_proj", L * (q + 2 * kv) * H * 2}, {"norm_gate_up_swiglu", L * 2 * I * H * 2},
          {"o_proj_add", L * H * q * 2}, {"down_proj_add", L * H * I * 2},
          {"lm_head", config.vocab_size * H * 2}};
      const double step_ms = (tn.gpu_ms - t1.gpu_ms) / decode_steps;
      double named = 0;
      for (const auto& [op, total] : tn.op_ms) {
        const double ms = (total - (t1.op_ms.count(op) ? t1.op_ms.at(op) : 0.0)) / decode_steps;
        named += ms;
        const auto w = weights.find(op);
        const std::string gbs = w != weights.end() && scheme == "bf16" ? std::to_string(int(w->second / ms / 1e6)) : "-";
        std::printf("PROFILE | %s b%ld | %s | %.4f | %.1f%% | %s |\n", shape.c_str(), batch, op.c_str(), ms,
                    100 * ms / step_ms, gbs.c_str());
      }
      std::printf("PROFILE | %s b%ld | between ops | %.4f | %.1f%% | - |\n", shape.c_str(), batch, step_ms - named,
                  100 * (step_ms - named) / step_ms);
      std::printf("PROFILE | %s b%ld | step | %.4f | 100%% | %d |\n", shape.c_str(), batch, step_ms,
                  int(weight_bytes / step_ms / 1e6));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_bench: %s\n", e.what());
    return 1;
  }
}
