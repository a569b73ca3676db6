// One forward + backward (no optimizer) of a Llama-shaped model on one GPU, random weights and ids.
// bench/model_bench [--hidden 2048] [--inter 8192] [--layers 16] [--heads 32] [--kv 8] [--vocab 128256]
//                   [--seq 2048] [--mbs 4] [--steps 10] [--ckpt | --recompute-norms-swiglu] [--segment-ids]
// Prints RESULT {json} with tokens/s, model TFLOP/s (counted as torch_peer.py does) and peak memory.
// --ckpt recomputes whole layers (train.activation_checkpointing), --recompute-norms-swiglu the two
// norms and the SwiGLU product (train.recompute_norms_swiglu): the same pass as the train run it
// is set beside. --segment-ids hands attention segment ids of one document per sequence, as
// `tessera train` does for text that fills whole sequences (the same mask as without them).
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/stream.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"
#include "model/transformer.h"

using namespace tessera;

int main(int argc, char** argv) {
  try {
    std::map<std::string, int64_t> a{{"hidden", 2048}, {"inter", 8192}, {"layers", 16}, {"heads", 32}, {"kv", 8},
                                     {"vocab", 128256}, {"seq", 2048}, {"mbs", 4}, {"steps", 10}};
    Recompute recompute = Recompute::none;
    bool segments = false;
    for (int i = 1; i < argc; ++i) {
      std::string key = argv[i];
      if (key == "--ckpt") { recompute = Recompute::layers; continue; }
      if (key == "--recompute-norms-swiglu") { recompute = Recompute::norms_swiglu; continue; }
      if (key == "--segment-ids") { segments = true; continue; }
      TS_CHECK(key.starts_with("--") && a.count(key.substr(2)) && i + 1 < argc, "unknown argument {}", key);
      a[key.substr(2)] = std::stoll(argv[++i]);
    }
    TS_CHECK(cuda_device_count() > 0, "model_bench needs a GPU: {}", cuda_unavailable_reason());
    const Device gpu = Device::cuda(0);
    const ModelConfig config = ModelConfig::from_json(
        nlohmann::json{{"model_type", "llama"}, {"hidden_size", a["hidden"]}, {"intermediate_size", a["inter"]},
                       {"num_hidden_layers", a["layers"]}, {"num_attention_heads", a["heads"]},
                       {"num_key_value_heads", a["kv"]}, {"vocab_size", a["vocab"]},
                       {"max_position_embeddings", std::max<int64_t>(4096, a["seq"])}, {"tie_word_embeddings", true},
                       {"rope_theta", 500000.0}},
        "model_bench");
    ModelParams params = make_params(config, DType::BF16, gpu, false);
    uint64_t offset = 0;
    for_each_param(config, params, [&](const std::string&, Tensor& t) {
      ops::fill_normal(t, 7, offset, 0.0f, 0.02f);
      offset += t.numel();
    });
    ModelParams grads = make_params(config, DType::F32, gpu, true);
    Tensor ids = Tensor::empty({a["mbs"], a["seq"]}, DType::I64);
    for (int64_t i = 0; i < ids.numel(); ++i) ids.data_as<int64_t>()[i] = (i * 2654435761LL) % a["vocab"];
    TokenBatch batch = TokenBatch::causal_lm(ids, gpu);
    if (segments)
      batch.segment_ids = Tensor::from_vector(std::vector<int32_t>(batch.tokens(), 0), {batch.batch, batch.seq}, DType::I32)
                              .to(gpu);

    WholeParams source(params, &grads);
    const RunOptions options{.backward = true, .recompute = recompute};
    for (int i = 0; i < 2; ++i) run_model(config, source, batch, options);
    synchronize_device(gpu);
    reset_peak_memory(gpu);
    const auto start = std::chrono::steady_clock::now();
    double loss = 0;
    for (int64_t i = 0; i < a["steps"]; ++i) loss = run_model(config, source, batch, options).loss;
    synchronize_device(gpu);
    const double step = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / a["steps"];

    int64_t n_params = 0;
    for (const ParamSpec& p : model_parameters(config)) n_params += shape_numel(p.shape);
    const double tokens = double(a["mbs"]) * a["seq"];
    const double flops = 6.0 * n_params * tokens + 12.0 * a["layers"] * a["hidden"] * a["seq"] * tokens / 2;
    const char* recomputed = recompute == Recompute::layers ? "layers" : recompute == Recompute::norms_swiglu ? "norms_swiglu" : "none";
    std::printf("RESULT {\"what\":\"tessera_fwd_bwd\",\"params\":%ld,\"seq\":%ld,\"mbs\":%ld,\"recompute\":\"%s\",\"segment_ids\":%d,\"step_s\":%.4f,"
                "\"tok_per_s\":%.0f,\"tflops\":%.1f,\"peak_mem_gib\":%.2f,\"loss\":%.4f}\n",
                n_params, a["seq"], a["mbs"], recomputed, segments ? 1 : 0, step, tokens / step, flops / step / 1e12,
                memory_stats(gpu).peak_allocated / 1073741824.0, loss);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_bench: %s\n", e.what());
    return 1;
  }
}
