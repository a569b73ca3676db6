// The serving loop's host work per decode step, apart from the model, on the CPU: a tiny random
// Llama (hidden 64, 2 layers) whose step costs little, `batch` requests through the Generator
// (continuous batching, paged KV cache, temperature 1) with a real tokenizer, and each token's
// event turned into what the server sends (GeneratorBackend::to_server, an OpenAI SSE chunk).
// The 1B shape's GPU decode step at batch 64 is about 1.8 ms: the host's share must stay well
// under it, and must not grow with the generation's length.
// bench/serve_host_bench [--tokenizer DIR (tests/data/tokenizers/llama3)] [--batches 64,128,256] [--prompt 32] [--new 128]
//                        [--vocab 4096]
// Prints per batch, with the tokenizer and without (ids only, no text): RESULT {json} with the
// wall ms per decode step, the model's run() ms per step, host_ms (wall - run: scheduling, step
// input, text, events) and events_ms (the callbacks: to_server and the SSE chunk), each per step.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>

#include "one_batch.h"
#include "core/error.h"
#include "engine/inference/generator.h"
#include "engine/server/generator_backend.h"
#include "engine/server/openai_response.h"
#include "kernels/ops.h"
#include "model/inference_model.h"
#include "model/model_config_params.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Totals {
  double wall_s = 0, run_ms = 0, events_s = 0;
  int64_t steps = 0, bytes = 0;
};

// One batch of `batch` streamed requests of `fresh` tokens each, to the end.
Totals serve_batch(inference::Generator& generator, InferenceModel& model, int64_t batch, int64_t prompt,
                   int64_t fresh, int64_t vocab) {
  std::vector<inference::Request> requests(batch);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < prompt; ++t) requests[b].prompt.push_back(static_cast<int32_t>((b * 7919 + t * 104729) % vocab));
    requests[b].sampling.temperature = 1.0;
    requests[b].sampling.seed = static_cast<uint64_t>(b);
    requests[b].max_new_tokens = fresh;
    requests[b].ignore_eos = true;
  }
  std::vector<server::CompletionWriter> writers;
  for (int64_t b = 0; b < batch; ++b)
    writers.emplace_back(server::Endpoint::kCompletions, server::response_id("cmpl-"), "bench", 0, false);
  Totals t;
  uint64_t first_id = 0;
  model.reset_timings();
  const auto start = Clock::now();
  const std::vector<uint64_t> ids = generator.submit_all(std::move(requests), [&](const inference::Event& e) {
    const auto at = Clock::now();
    t.bytes += static_cast<int64_t>(writers[e.request - first_id].add(server::GeneratorBackend::to_server(e)).size());
    t.events_s += since(at);
  });
  first_id = ids.front();
  generator.run_until_idle();
  t.wall_s = since(start);
  t.run_ms = model.timings().run_ms;
  t.steps = model.timings().steps;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string tokenizer_dir = "tests/data/tokenizers/llama3", batches = "64,128,256";
    int64_t prompt = 32, fresh = 128, vocab = 4096;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string key = argv[i], value = argv[i + 1];
      if (key == "--tokenizer") tokenizer_dir = value;
      else if (key == "--batches") batches = value;
      else if (key == "--prompt") prompt = std::stoll(value);
      else if (key == "--new") fresh = std::stoll(value);
      else if (key == "--vocab") vocab = std::stoll(value);
      else throw Error("serve_host_bench: unknown argument " + key);
    }
    TS_CHECK(prompt > 0 && fresh > 1 && vocab > 0, "--prompt and --vocab must be positive, --new at least 2");
    const auto tokenizer = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::from_file(tokenizer_dir));
    TS_CHECK(vocab <= tokenizer->vocab_size(), "--vocab {} is larger than the tokenizer's {}", vocab,
             tokenizer->vocab_size());
    const ModelConfig config = ModelConfig::from_json(
        nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 128},
                       {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                       {"vocab_size", vocab}, {"max_position_embeddings", 4096}, {"tie_word_embeddings", true}},
        "serve_host_bench");
    ModelParams params = make_params(config, DType::F32, Device::cpu(), false);
    uint64_t offset = 0;
    for_each_param(config, params, [&](const std::string&, Tensor& t) {
      ops::fill_normal(t, 7, offset, 0.0f, 0.5f);
      offset += t.numel();
    });
    auto model = std::make_shared<InferenceModel>(config, std::make_shared<OwnedParams>(params), Device::cpu(), DType::F32);
    std::stringstream list(batches);
    for (std::string item; std::getline(list, item, ',');) {
      const int64_t batch = std::stoll(item);
      for (const bool text : {true, false}) {
        inference::Generator generator(model, text ? tokenizer : nullptr, one_batch_options(batch, prompt, fresh));
        serve_batch(generator, *model, batch, prompt, 2, vocab);  // warm-up
        // Decode steps alone: a run of `fresh` tokens less a run of one (the prefill).
        const Totals one = serve_batch(generator, *model, batch, prompt, 1, vocab);
        const Totals all = serve_batch(generator, *model, batch, prompt, fresh, vocab);
        const double steps = double(all.steps - one.steps);
        const double wall_ms = (all.wall_s - one.wall_s) * 1e3 / steps, run_ms = (all.run_ms - one.run_ms) / steps;
        std::printf("RESULT {\"what\":\"serve_host\",\"batch\":%ld,\"text\":%d,\"prompt\":%ld,\"new_tokens\":%ld,"
                    "\"vocab\":%ld,\"wall_ms_per_step\":%.4f,\"run_ms_per_step\":%.4f,\"host_ms_per_step\":%.4f,"
                    "\"events_ms_per_step\":%.4f,\"host_us_per_token\":%.3f,\"sse_bytes_per_token\":%.1f}\n",
                    batch, text ? 1 : 0, prompt, fresh, vocab, wall_ms, run_ms, wall_ms - run_ms,
                    (all.events_s - one.events_s) * 1e3 / steps, (wall_ms - run_ms) * 1e3 / double(batch),
                    double(all.bytes) / double(batch * fresh));
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_host_bench: %s\n", e.what());
    return 1;
  }
}
