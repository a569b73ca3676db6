// The API over real loopback HTTP with the scripted engine: a streamed completion arrives as
// chunked server-sent events, httplib's own refusals (body too large, unknown method) come in
// OpenAI's error shape, and a client that hangs up mid-stream cancels its generation.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "engine/server/http_server.h"
#include "scripted_backend.h"

using namespace tessera;
using nlohmann::json;

namespace {

struct Running {
  Running() : service(options(), registry) {
    service.set_backend(&backend);
    server::HttpOptions o;
    o.port = 0;
    o.threads = 4;
    o.max_body_bytes = 4096;
    http = std::make_unique<server::HttpServer>(service, o);
  }
  static server::ServiceOptions options() {
    server::ServiceOptions o;
    o.model_name = "tiny";
    o.max_body_bytes = 4096;
    return o;
  }
  metrics::Registry registry;
  testing_util::ScriptedBackend backend;
  server::ApiService service;
  std::unique_ptr<server::HttpServer> http;
};

}  // namespace

TEST(HttpServer, StreamsServerSentEvents) {
  Running r;
  httplib::Client client("127.0.0.1", r.http->port());
  auto res = client.Post("/v1/completions", R"({"prompt": "a", "max_tokens": 4, "stream": true})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(res->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_TRUE(res->body.ends_with("data: [DONE]\n\n")) << res->body;
  EXPECT_NE(res->body.find(R"("text":"l")"), std::string::npos);
}

TEST(HttpServer, TransportRefusalsInOpenAiShape) {
  Running r;
  httplib::Client client("127.0.0.1", r.http->port());
  auto big = client.Post("/v1/completions", std::string(5000, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"]["code"], "body_too_large");
  auto put = client.Put("/v1/completions", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 404);
  EXPECT_EQ(json::parse(put->body)["error"]["code"], "not_found");
  auto ok = client.Get("/health");  // still serving
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, HangingUpMidStreamCancels) {
  Running r;
  r.backend.per_token = std::chrono::milliseconds(5);
  httplib::Client client("127.0.0.1", r.http->port());
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"prompt": "a", "max_tokens": 100000, "stream": true})";
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };  // false: hang up
  EXPECT_FALSE(client.send(req));
  for (int i = 0; i < 200 && !r.backend.was_cancelled(1); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(r.backend.was_cancelled(1));
}
