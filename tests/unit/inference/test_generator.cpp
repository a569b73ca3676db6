// Continuous batching: batched, chunked, preempted and seeded generations equal their references.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "../../error_text.h"
#include "../../inference_models.h"
#include "../tokenizer/tokenizer_test_util.h"
#include "engine/inference/generator.h"

using namespace tessera;
using namespace tessera::inference;
using namespace tessera::testing_util;

namespace {

GeneratorOptions inline_options() {
  GeneratorOptions o;
  o.worker_thread = false;
  o.kv_cache_blocks = 64;
  o.block_size = 4;
  return o;
}

Request greedy(std::vector<int32_t> prompt, int64_t n) {
  Request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.max_new_tokens = n;
  r.ignore_eos = true;
  return r;
}

Request sampled(std::vector<int32_t> prompt, int64_t n, uint64_t seed) {
  Request r = greedy(std::move(prompt), n);
  r.sampling.temperature = 0.9;
  r.sampling.top_p = 0.95;
  r.sampling.top_k = 40;
  r.sampling.seed = seed;
  return r;
}

std::vector<Completion> run(const CpuModel& m, std::vector<Request> requests, GeneratorOptions o = inline_options(),
                            GeneratorStats* stats = nullptr) {
  Generator g(m.model, nullptr, o);
  std::vector<Completion> out = generate_all(g, std::move(requests));
  if (stats) *stats = g.stats();
  return out;
}

}  // namespace

// The generator's greedy tokens are the argmax of repeated full forwards, and its logprobs their
// log-softmax.
TEST(Generator, GreedyEqualsRepeatedFullForwards) {
  for (const char* name : {"llama_gqa", "qwen2_bias_tied"}) {
    SCOPED_TRACE(name);
    CpuModel m = cpu_model(name);
    const std::vector<int32_t> prompt = tokens(6, 9, m.loaded.config.vocab_size);
    const Completion c = run(m, {greedy(prompt, 12)})[0];
    ASSERT_EQ(c.ids.size(), 12u);
    EXPECT_EQ(c.finish, FinishReason::Length);
    std::vector<int32_t> seq = prompt;
    for (size_t i = 0; i < c.ids.size(); ++i) {
      const std::vector<float> full = full_forward_next_logits(m.loaded, seq);
      const int32_t want = static_cast<int32_t>(std::max_element(full.begin(), full.end()) - full.begin());
      ASSERT_EQ(c.ids[i], want) << "token " << i;
      double lse = 0;
      const float top = full[want];
      for (float v : full) lse += std::exp(double(v) - top);
      EXPECT_NEAR(c.logprobs[i], -std::log(lse), 1e-4) << "token " << i;
      seq.push_back(want);
    }
  }
}

// Prompts of different lengths batched (chunked prefill mixed with decoding: 8 tokens a step)
// give what each gives alone.
TEST(Generator, BatchedPromptsGiveWhatEachGivesAlone) {
  CpuModel m = cpu_model("qwen3_qknorm_bf16");
  const int64_t V = m.loaded.config.vocab_size;
  std::vector<Request> requests{greedy(tokens(3, 1, V), 10), greedy(tokens(19, 2, V), 6), greedy(tokens(9, 3, V), 14),
                                sampled(tokens(5, 4, V), 9, 77)};
  GeneratorOptions o = inline_options();
  o.max_batch_tokens = 8;
  GeneratorStats stats;
  const std::vector<Completion> together = run(m, requests, o, &stats);
  EXPECT_GT(stats.steps, 14);  // chunked: more steps than the longest generation
  for (size_t i = 0; i < requests.size(); ++i) {
    const Completion alone = run(m, {requests[i]})[0];
    EXPECT_EQ(together[i].ids, alone.ids) << "request " << i;
    ASSERT_EQ(together[i].logprobs.size(), alone.logprobs.size());
    for (size_t t = 0; t < alone.logprobs.size(); ++t) EXPECT_NEAR(together[i].logprobs[t], alone.logprobs[t], 1e-5);
  }
}

// A seed gives the same tokens again, whatever else is in the batch; another seed others.
TEST(Generator, SeededSamplingIsReproducibleAndIndependentOfTheBatch) {
  CpuModel m = cpu_model("llama_gqa");
  const int64_t V = m.loaded.config.vocab_size;
  const Request r = sampled(tokens(5, 8, V), 16, 1234);
  const Completion alone = run(m, {r})[0];
  EXPECT_EQ(run(m, {r})[0].ids, alone.ids);
  const std::vector<Completion> crowd =
      run(m, {sampled(tokens(11, 1, V), 7, 1), r, sampled(tokens(2, 2, V), 20, 2), greedy(tokens(4, 3, V), 5)});
  EXPECT_EQ(crowd[1].ids, alone.ids);
  Request other = r;
  other.sampling.seed = 99;
  EXPECT_NE(run(m, {other})[0].ids, alone.ids);
}

// Rows asking for top logprobs are drawn on the host from their full logits, the others by the
// model's sample_rows: both follow one definition, so a seed gives the same tokens either way.
TEST(Generator, HostAndDeviceDrawsAgree) {
  CpuModel m = cpu_model("llama_gqa");
  const int64_t V = m.loaded.config.vocab_size;
  Request on_device = sampled(tokens(7, 4, V), 16, 31);
  on_device.sampling.min_p = 0.05;
  Request on_host = on_device;
  on_host.top_logprobs = 2;
  const std::vector<Completion> both = run(m, {on_device, on_host});
  EXPECT_EQ(both[1].ids, both[0].ids);
}

// A pool too small for every sequence at once: sequences are preempted and recomputed, and the
// outputs equal those of a pool large enough.
TEST(Generator, PreemptionByRecomputeKeepsTheOutputs) {
  CpuModel m = cpu_model("llama_gqa");
  const int64_t V = m.loaded.config.vocab_size;
  std::vector<Request> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(i % 2 ? sampled(tokens(6 + i, i, V), 14, i) : greedy(tokens(6 + i, i, V), 14));
  const std::vector<Completion> roomy = run(m, requests);
  GeneratorOptions tight = inline_options();
  tight.kv_cache_blocks = 10;  // 40 tokens; each sequence grows to 20-23
  GeneratorStats stats;
  const std::vector<Completion> squeezed = run(m, requests, tight, &stats);
  EXPECT_GT(stats.preemptions, 0);
  EXPECT_EQ(stats.kv_blocks_used, 0);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(squeezed[i].ids, roomy[i].ids) << "request " << i;
}

// EOS (llama_gqa's is 2) and stop token ids end the generation at their first occurrence (the
// token included) unless ignore_eos; max_new_tokens ends it with "length".
TEST(Generator, StopTokensEosAndLength) {
  CpuModel m = cpu_model("llama_gqa");
  const int32_t eos = 2;
  const std::vector<int32_t> prompt = tokens(5, 3, m.loaded.config.vocab_size);
  const Completion free_run = run(m, {greedy(prompt, 16)})[0];
  EXPECT_EQ(free_run.finish, FinishReason::Length);
  ASSERT_EQ(free_run.ids.size(), 16u);
  auto until = [&](const std::vector<int32_t>& stops) {
    const auto end = std::find_first_of(free_run.ids.begin(), free_run.ids.end(), stops.begin(), stops.end());
    return std::vector<int32_t>(free_run.ids.begin(), end == free_run.ids.end() ? end : end + 1);
  };
  Request with_eos = greedy(prompt, 16);
  with_eos.ignore_eos = false;
  const Completion at_eos = run(m, {with_eos})[0];
  EXPECT_EQ(at_eos.ids, until({eos}));
  EXPECT_EQ(at_eos.finish, at_eos.ids.size() < 16 ? FinishReason::Stop : FinishReason::Length);
  // A stop id that is not EOS, from the free run's later tokens.
  int32_t stop_id = -1;
  for (size_t i = 3; i < free_run.ids.size() && stop_id < 0; ++i)
    if (free_run.ids[i] != eos) stop_id = free_run.ids[i];
  ASSERT_GE(stop_id, 0);
  Request r = greedy(prompt, 16);
  r.stop_token_ids = {stop_id};
  const Completion stopped = run(m, {r})[0];
  EXPECT_EQ(stopped.finish, FinishReason::Stop);
  EXPECT_EQ(stopped.ids, until({stop_id}));
}

TEST(Generator, RefusesBadRequestsQueueFullAndClosed) {
  CpuModel m = cpu_model("llama_gqa");
  GeneratorOptions o = inline_options();
  o.max_queue = 2;
  Generator g(m.model, nullptr, o);
  auto refusal = [&](Request r) { return error_of([&] { g.submit(std::move(r), {}); }); };
  EXPECT_NE(refusal(greedy({}, 4)).find("prompt: no tokens"), std::string::npos);
  EXPECT_NE(refusal(greedy({1, 64}, 4)).find("outside the vocabulary of 64"), std::string::npos);
  Request hot = greedy({1, 2}, 4);
  hot.sampling.temperature = -1;
  EXPECT_NE(refusal(hot).find("temperature"), std::string::npos);
  Request stops = greedy({1, 2}, 4);
  stops.stop = {"x"};
  EXPECT_NE(refusal(stops).find("tokenizer"), std::string::npos);
  EXPECT_NE(refusal(greedy(std::vector<int32_t>(g.context_length(), 1), 4)).find("no room"), std::string::npos);
  g.submit(greedy({1, 2}, 3), {});
  g.submit(greedy({1, 2}, 3), {});
  EXPECT_THROW(g.submit(greedy({1, 2}, 3), {}), QueueFull);
  g.drain();
  EXPECT_EQ(g.stats().running + g.stats().waiting, 0);
  EXPECT_EQ(g.stats().generated_tokens, 6);
  EXPECT_THROW(g.submit(greedy({1, 2}, 3), {}), Closed);
}

// With the worker thread (events delivered on it, or relayed to their own thread): events
// stream, a cancelled request ends "cancelled", drain waits for the rest, and stop() cancels what
// is left.
TEST(Generator, WorkerThreadCancelDrainStop) {
  CpuModel m = cpu_model("llama_gqa");
  for (const bool relay : {false, true}) {
    SCOPED_TRACE(relay ? "events relayed" : "events on the worker");
    GeneratorOptions o = inline_options();
    o.worker_thread = true;
    o.max_seq_len = 128;
    o.relay_events = relay;
    Generator g(m.model, nullptr, o);
    std::atomic<int> tokens_long{0}, finished{0};
    std::atomic<int> long_finish{-1}, short_finish{-1};
    std::atomic<bool> cancel_sent{false};
    const uint64_t long_id = g.submit(greedy({1, 2, 3}, 100), [&](const Event& e) {
      // The engine waits at the third token until the cancel is in, so a fast machine cannot
      // finish all 100 first.
      if (e.token >= 0 && ++tokens_long == 3)
        while (!cancel_sent) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (e.finish != FinishReason::None) long_finish = static_cast<int>(e.finish), ++finished;
    });
    g.submit(greedy({4, 5}, 5), [&](const Event& e) {
      if (e.finish != FinishReason::None) short_finish = static_cast<int>(e.finish), ++finished;
      EXPECT_GE(e.queue_seconds, 0);
    });
    while (tokens_long < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    g.cancel(long_id);
    cancel_sent = true;
    g.drain();
    EXPECT_EQ(finished, 2);
    EXPECT_EQ(long_finish, static_cast<int>(FinishReason::Cancelled));
    EXPECT_EQ(short_finish, static_cast<int>(FinishReason::Length));
    EXPECT_LT(tokens_long, 100);
    g.stop();
  }
}

// Stop strings through the engine, with the byte tokenizer (a token is a byte, so a stop string
// of three bytes spans three tokens): the text ends before the stop string's first occurrence,
// and the request ends at the token that completes it.
TEST(Generator, StopStringsSpanningTokens) {
  CpuModel m = cpu_model("llama_gqa");
  auto bytes = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::bytes());
  Generator g(m.model, bytes, inline_options());
  const std::vector<int32_t> prompt = tokens(5, 3, m.loaded.config.vocab_size);
  const Completion free_run = generate_all(g, {greedy(prompt, 24)})[0];
  ASSERT_EQ(free_run.ids.size(), 24u);
  EXPECT_EQ(free_run.text, bytes->decode(free_run.ids, true));
  for (size_t at : {0, 7, 20}) {
    Request r = greedy(prompt, 24);
    r.stop = {free_run.text.substr(at, 3)};
    const size_t first = free_run.text.find(r.stop[0]);
    const Completion c = generate_all(g, {r})[0];
    EXPECT_EQ(c.finish, FinishReason::Stop) << "stop at " << at;
    EXPECT_EQ(c.text, free_run.text.substr(0, first)) << "stop at " << at;
    EXPECT_EQ(c.ids.size(), first + 3) << "stop at " << at;
  }
}

// A token the tokenizer cannot decode (a model whose vocabulary is larger than its tokenizer's)
// ends its own request with an error naming it; the other requests of the batch go on.
TEST(Generator, AnUndecodableTokenEndsOnlyItsRequest) {
  CpuModel m = cpu_model("llama_gqa");
  const int64_t vocab = m.loaded.config.vocab_size;
  // Free runs without a tokenizer; two whose largest ids differ.
  std::vector<Request> requests;
  for (uint64_t seed = 0; seed < 12; ++seed) requests.push_back(greedy(tokens(5, seed, vocab), 8));
  const std::vector<Completion> free = run(m, requests);
  auto largest = [](const Completion& c) { return *std::max_element(c.ids.begin(), c.ids.end()); };
  size_t low = 0, high = 0;
  for (size_t i = 0; i < free.size(); ++i) {
    if (largest(free[i]) < largest(free[low])) low = i;
    if (largest(free[i]) > largest(free[high])) high = i;
  }
  ASSERT_LT(largest(free[low]), largest(free[high]));
  // A tokenizer of ids 0..largest(low): every token of `low` decodes, some of `high` do not.
  std::vector<std::string> words;
  for (int32_t i = 1; i <= largest(free[low]); ++i) words.push_back("w" + std::to_string(i));
  auto words_tokenizer = std::make_shared<const tok::Tokenizer>(tok::testing::load(tok::testing::word_tokenizer(words)));
  ASSERT_EQ(words_tokenizer->vocab_size(), largest(free[low]) + 1);
  Generator g(m.model, words_tokenizer, inline_options());
  const std::vector<Completion> both = generate_all(g, {requests[low], requests[high]});
  EXPECT_EQ(both[0].finish, FinishReason::Length);
  EXPECT_EQ(both[0].ids, free[low].ids);
  EXPECT_EQ(both[0].text, words_tokenizer->decode(free[low].ids, true));
  EXPECT_EQ(both[1].finish, FinishReason::Error);
  EXPECT_NE(both[1].error.find("out of range"), std::string::npos) << both[1].error;
  const auto bad = std::find_if(free[high].ids.begin(), free[high].ids.end(),
                                [&](int32_t id) { return id > largest(free[low]); });
  EXPECT_EQ(both[1].ids, std::vector<int32_t>(free[high].ids.begin(), bad + 1));
}

// 40 sampled requests in one batch, half with a stop string: each request's text is its own
// tokens' decode, cut before its stop string where one occurs (and the request ends there).
TEST(Generator, BatchedTextAndStopStringsAreEachRequestsOwn) {
  CpuModel m = cpu_model("llama_gqa");
  auto bytes = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::bytes());
  GeneratorOptions o = inline_options();
  o.kv_cache_blocks = 512;
  Generator g(m.model, bytes, o);
  std::vector<Request> requests;
  for (uint64_t i = 0; i < 40; ++i) {
    Request r = sampled(tokens(5, i, m.loaded.config.vocab_size), 12, i);
    if (i % 2) r.stop = {std::string(1, static_cast<char>(32 + i % 16))};  // one byte: ' ' .. '/'
    requests.push_back(r);
  }
  const std::vector<Completion> out = generate_all(g, requests);
  int stopped = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string whole = bytes->decode(out[i].ids, true);
    if (requests[i].stop.empty()) {
      EXPECT_EQ(out[i].text, whole) << "request " << i;
      continue;
    }
    const size_t at = whole.find(requests[i].stop[0]);
    EXPECT_EQ(out[i].text, whole.substr(0, at)) << "request " << i;
    EXPECT_EQ(out[i].finish, at == std::string::npos ? FinishReason::Length : FinishReason::Stop) << "request " << i;
    if (at != std::string::npos) {
      EXPECT_EQ(at + 1, whole.size()) << "request " << i;  // it ended at the stop
    }
    stopped += at != std::string::npos;
  }
  EXPECT_GT(stopped, 0);
}
