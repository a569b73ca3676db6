// GeneratorBackend's translation between the protocol's types and the engine's: every request
// field reaches the Generator, every event field reaches the server (finish reasons by name).
#include <gtest/gtest.h>

#include "engine/server/generator_backend.h"

using namespace tessera;
using namespace tessera::server;

TEST(GeneratorBackend, RequestFieldsReachTheEngine) {
  GenerationRequest r;
  r.prompt = {256, 1, 2};
  r.sampling = {.temperature = 0.5, .top_p = 0.9, .top_k = 7, .min_p = 0.05, .repetition_penalty = 1.1,
                .presence_penalty = 0.2, .frequency_penalty = 0.3, .seed = 42};
  r.max_new_tokens = 9;
  r.stop = {"\n\n", "END"};
  r.ignore_eos = true;
  r.top_logprobs = 3;
  r.adapter = "sql";
  const inference::Request q = GeneratorBackend::to_engine(r);
  EXPECT_EQ(q.prompt, r.prompt);
  EXPECT_EQ(q.sampling.temperature, 0.5);
  EXPECT_EQ(q.sampling.top_p, 0.9);
  EXPECT_EQ(q.sampling.top_k, 7);
  EXPECT_EQ(q.sampling.min_p, 0.05);
  EXPECT_EQ(q.sampling.repetition_penalty, 1.1);
  EXPECT_EQ(q.sampling.presence_penalty, 0.2);
  EXPECT_EQ(q.sampling.frequency_penalty, 0.3);
  EXPECT_EQ(q.sampling.seed, std::optional<uint64_t>(42));
  EXPECT_EQ(q.max_new_tokens, 9);
  EXPECT_EQ(q.stop, r.stop);
  EXPECT_TRUE(q.ignore_eos);
  EXPECT_EQ(q.top_logprobs, 3);
  EXPECT_EQ(q.adapter, "sql");
  EXPECT_FALSE(GeneratorBackend::to_engine(GenerationRequest{}).sampling.seed.has_value());
}

TEST(GeneratorBackend, EventFieldsReachTheServer) {
  inference::Event e;
  e.token = 104;
  e.text = "he";
  e.token_text = "h";
  e.logprob = -0.25;
  e.top_logprobs = {{104, "h", -0.25}, {105, "i", -1.5}};
  e.prompt_tokens = 5;
  e.generated_tokens = 2;
  e.queue_seconds = 0.125;
  TokenEvent t = GeneratorBackend::to_server(e);
  EXPECT_EQ(t.text, "he");
  EXPECT_EQ(t.token, "h");
  EXPECT_EQ(t.logprob, -0.25);
  ASSERT_EQ(t.top_logprobs.size(), 2u);
  EXPECT_EQ(t.top_logprobs[1].token, "i");
  EXPECT_EQ(t.top_logprobs[1].logprob, -1.5);
  EXPECT_EQ(t.finish_reason, "");
  EXPECT_EQ(t.prompt_tokens, 5);
  EXPECT_EQ(t.generated_tokens, 2);
  EXPECT_EQ(t.queue_seconds, 0.125);
  const std::vector<std::pair<inference::FinishReason, std::string>> reasons{
      {inference::FinishReason::Stop, "stop"}, {inference::FinishReason::Length, "length"},
      {inference::FinishReason::Cancelled, "cancelled"}, {inference::FinishReason::Error, "error"}};
  for (const auto& [reason, name] : reasons) {
    e.finish = reason;
    e.error = reason == inference::FinishReason::Error ? "boom" : "";
    t = GeneratorBackend::to_server(e);
    EXPECT_EQ(t.finish_reason, name);
    EXPECT_EQ(t.error, e.error);
  }
}
