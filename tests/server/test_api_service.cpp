// The OpenAI protocol driven directly (no sockets) against a scripted engine: response shapes,
// streams, every error status, cancellation, timeouts, drain and the metrics they leave.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/server/api_service.h"
#include "scripted_backend.h"

using namespace tessera;
using nlohmann::json;
using server::HttpRequest;

namespace {

struct Fixture {
  explicit Fixture(server::ServiceOptions options = defaults()) : service(std::move(options), registry) {
    service.set_backend(&backend);
  }
  static server::ServiceOptions defaults() {
    server::ServiceOptions o;
    o.model_name = "tiny";
    o.adapters = {"sql"};
    return o;
  }
  server::HttpReply post(const std::string& path, const std::string& body, const std::string& auth = "") {
    return service.handle({"POST", path, body, auth, "127.0.0.1"});
  }
  // Pulls a stream to its end; the bytes it sent.
  static std::string drain_stream(server::ReplyStream& s) {
    std::string all, piece;
    for (int i = 0; i < 1000; ++i) {
      auto next = s.next(piece, std::chrono::milliseconds(200));
      if (next == server::ReplyStream::Next::kEnd) return all;
      all += piece;
    }
    return all + "(no end)";
  }
  double metric(const std::string& series) {
    const std::string text = registry.text();
    const size_t at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
  }
  metrics::Registry registry;
  testing_util::ScriptedBackend backend;
  server::ApiService service;
};

// The "data: " payloads of a server-sent-event stream.
std::vector<std::string> events_of(const std::string& stream) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = stream.find("data: ", at)) != std::string::npos) {
    const size_t end = stream.find("\n\n", at);
    out.push_back(stream.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

json api_error(const server::HttpReply& r) { return json::parse(r.body)["error"]; }

}  // namespace

TEST(ApiService, CompletionShape) {
  Fixture f;
  auto r = f.post("/v1/completions",
                  R"({"model": "tiny", "prompt": "abc", "max_tokens": 5, "temperature": 0, "ignore_eos": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_TRUE(j["id"].get<std::string>().starts_with("cmpl-"));
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["choices"][0]["text"], "hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"], (json{{"prompt_tokens", 3}, {"completion_tokens", 5}, {"total_tokens", 8}}));
  ASSERT_EQ(f.backend.submitted.size(), 1u);
  EXPECT_EQ(f.backend.submitted[0].sampling.temperature, 0);
  EXPECT_EQ(f.backend.submitted[0].prompt, (std::vector<int32_t>{'a', 'b', 'c'}));
  EXPECT_TRUE(f.backend.submitted[0].ignore_eos);
}

TEST(ApiService, ChatShapeStopAndLogprobs) {
  Fixture f;
  auto r = f.post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "stop": "w",
                                              "logprobs": true, "top_logprobs": 1, "seed": 7})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "hello "}}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 7u);  // six characters and the stop token
  EXPECT_EQ(content[0]["token"], "h");
  EXPECT_EQ(content[0]["logprob"], -0.5);
  EXPECT_EQ(content[0]["bytes"], json::array({104}));
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], "?");
  EXPECT_EQ(f.backend.submitted[0].sampling.seed, 7u);
  EXPECT_EQ(f.backend.submitted[0].stop, std::vector<std::string>{"w"});
  EXPECT_EQ(f.backend.submitted[0].max_new_tokens, 256 - 20);  // chat: up to the context ("user: hi\nassistant: ")
}

TEST(ApiService, ChatStreamChunksAndUsage) {
  Fixture f;
  auto r = f.post("/v1/chat/completions", R"({"model": "sql", "messages": [{"role": "user", "content": "x"}],
      "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.stream);
  EXPECT_EQ(r.content_type, "text/event-stream");
  auto events = events_of(Fixture::drain_stream(*r.stream));
  ASSERT_EQ(events.size(), 7u);  // role, h, e, l, finish, usage, [DONE]
  EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  std::string text;
  for (int i = 1; i <= 3; ++i) {
    json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["model"], "sql");
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    text += c["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, "hel");
  EXPECT_EQ(json::parse(events[4])["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(json::parse(events[5])["usage"]["completion_tokens"], 3);
  EXPECT_EQ(events[6], "[DONE]");
  EXPECT_EQ(f.backend.submitted[0].adapter, "sql");
}

TEST(ApiService, ErrorsHaveOpenAiShapeAndStatus) {
  server::ServiceOptions o = Fixture::defaults();
  o.keys.add("sk-right", "alice");
  o.max_body_bytes = 2000;
  Fixture f(std::move(o));
  const std::string key = "Bearer sk-right";
  auto expect = [&](const server::HttpReply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    json e = api_error(r);
    EXPECT_EQ(e["code"], code) << r.body;
    EXPECT_TRUE(e["message"].is_string() && e["type"].is_string()) << r.body;
  };
  expect(f.post("/v1/completions", R"({"prompt": "a"})"), 401, "invalid_api_key");
  expect(f.post("/v1/completions", R"({"prompt": "a"})", "Bearer sk-wrong"), 401, "invalid_api_key");
  expect(f.post("/v1/completions", "{not json", key), 400, "invalid_json");
  expect(f.post("/v1/completions", "[1]", key), 400, "invalid_json");
  expect(f.post("/v1/completions", R"({"prompt": "a", "temperature": 9})", key), 400, "invalid_value");
  expect(f.post("/v1/completions", R"({"prompt": "a", "max_tokens": "many"})", key), 400, "invalid_value");
  expect(f.post("/v1/completions", R"({"prompt": "a", "n": 2})", key), 400, "invalid_value");
  expect(f.post("/v1/completions", R"({"prompt": "a", "best_of": 2})", key), 400, "unknown_field");
  expect(f.post("/v1/completions", R"({"max_tokens": 2})", key), 400, "missing_field");
  expect(f.post("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "a"}]})", key), 400, "invalid_value");
  expect(f.post("/v1/completions", R"({"prompt": "a\u0001"})", key), 400, "invalid_value");
  expect(f.post("/v1/completions", json{{"prompt", std::string(300, 'a')}}.dump(), key), 400, "context_length_exceeded");
  expect(f.post("/v1/completions", json{{"prompt", std::string(3000, 'a')}}.dump(), key), 413, "body_too_large");
  expect(f.post("/v1/completions", R"({"prompt": "a", "model": "gpt-4"})", key), 404, "model_not_found");
  expect(f.post("/v1/embeddings", "{}", key), 404, "not_found");
  expect(f.service.handle({"GET", "/v1/completions", "", key, ""}), 404, "not_found");
  f.backend.queue_full = true;
  expect(f.post("/v1/completions", R"({"prompt": "a"})", key), 429, "queue_full");
  EXPECT_EQ(f.metric("tessera_requests_total{status=\"401\"}"), 2);
  EXPECT_EQ(f.metric("tessera_requests_total{status=\"400\"}"), 10);
}

TEST(ApiService, ModelsHealthAndMetricsNeedNoKeyButModelsDoes) {
  server::ServiceOptions o = Fixture::defaults();
  o.keys.add("k");
  metrics::Registry registry;
  server::ApiService service(std::move(o), registry);
  EXPECT_EQ(service.handle({"GET", "/health", "", "", ""}).status, 503);  // loading
  EXPECT_EQ(api_error(service.handle({"GET", "/v1/models", "", "Bearer k", ""}))["code"], "loading");
  testing_util::ScriptedBackend backend;
  service.set_backend(&backend);
  auto health = service.handle({"GET", "/health", "", "", ""});
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  EXPECT_EQ(service.handle({"GET", "/v1/models", "", "", ""}).status, 401);
  json models = json::parse(service.handle({"GET", "/v1/models", "", "Bearer k", ""}).body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][1]["id"], "sql");
  auto m = service.handle({"GET", "/metrics", "", "", ""});
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("tessera_kv_cache_usage_ratio 0.5\n"), std::string::npos);
}

TEST(ApiService, RateLimitPerKey) {
  server::ServiceOptions o = Fixture::defaults();
  o.keys.add("a", "a");
  o.keys.add("b", "b");
  o.rate_limit_per_minute = 2;  // a burst of two, then one each 30 s
  Fixture f(std::move(o));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(f.service.handle({"GET", "/v1/models", "", "Bearer a", ""}).status, 200);
  auto limited = f.service.handle({"GET", "/v1/models", "", "Bearer a", ""});
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(api_error(limited)["code"], "rate_limit_exceeded");
  EXPECT_EQ(f.service.handle({"GET", "/v1/models", "", "Bearer b", ""}).status, 200);  // b has its own bucket
}

TEST(ApiService, StreamClosedEarlyCancelsTheGeneration) {
  Fixture f;
  f.backend.per_token = std::chrono::milliseconds(5);
  auto r = f.post("/v1/completions", R"({"prompt": "a", "max_tokens": 100000, "stream": true})");
  ASSERT_TRUE(r.stream);
  std::string piece;
  r.stream->next(piece, std::chrono::milliseconds(500));
  EXPECT_NE(piece.find("\"text\""), std::string::npos);
  r.stream.reset();  // the transport drops the stream: the client went away
  EXPECT_TRUE(f.backend.was_cancelled(1));
  EXPECT_EQ(f.metric("tessera_requests_total{status=\"499\"}"), 1);
  EXPECT_EQ(f.metric("tessera_requests_finished_total{reason=\"cancelled\"}"), 1);
}

TEST(ApiService, TimeoutCancelsAndAnswers504) {
  server::ServiceOptions o = Fixture::defaults();
  o.request_timeout_s = 0.05;
  Fixture f(std::move(o));
  f.backend.per_token = std::chrono::milliseconds(5);
  auto r = f.post("/v1/completions", R"({"prompt": "a", "max_tokens": 100000})");
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(api_error(r)["code"], "timeout");
  EXPECT_TRUE(f.backend.was_cancelled(1));
}

TEST(ApiService, EngineErrorIs500) {
  Fixture f;
  f.backend.fail_with = "out of KV blocks";
  auto r = f.post("/v1/completions", R"({"prompt": "a"})");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(api_error(r)["message"], "out of KV blocks");
}

TEST(ApiService, DrainRefusesNewRequestsAndWaitsForRunning) {
  Fixture f;
  f.backend.per_token = std::chrono::milliseconds(2);
  auto r = f.post("/v1/completions", R"({"prompt": "a", "max_tokens": 20, "stream": true})");
  ASSERT_TRUE(r.stream);
  std::thread reader([&] {
    Fixture::drain_stream(*r.stream);
    r.stream.reset();  // as the transport does once the last byte is written
  });
  EXPECT_TRUE(f.service.drain(std::chrono::seconds(10)));
  reader.join();
  EXPECT_EQ(f.service.health().status, "draining");
  auto refused = f.post("/v1/completions", R"({"prompt": "a"})");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(api_error(refused)["code"], "draining");
  EXPECT_EQ(f.metric("tessera_requests_total{status=\"200\"}"), 1);
  EXPECT_EQ(f.metric("tessera_generation_tokens_total"), 20);
  EXPECT_EQ(f.metric("tessera_time_to_first_token_seconds_count"), 1);
  EXPECT_EQ(f.metric("tessera_inter_token_latency_seconds_count"), 19);
}
