// The OpenAI-compatible API as request handling, apart from any HTTP library: a request (method,
// path, body, Authorization header) goes in, a reply comes out, whole or as a stream of
// server-sent events that the transport pulls. Routes, auth, rate limits, body and prompt limits,
// the engine's errors as HTTP statuses, request timeouts, metrics, one access-log line per
// request, and draining all live here; engine/server/http_server.cpp only moves bytes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/metrics/registry.h"
#include "engine/server/api_keys.h"
#include "engine/server/backend.h"
#include "engine/server/http_listener.h"
#include "engine/server/rate_limiter.h"

namespace tessera::server {

struct ServiceOptions {
  std::string model_name;             // the base model's name in "model" and /v1/models
  std::vector<std::string> adapters;  // names a request may pick by "model"
  ApiKeys keys;                       // empty: no key needed
  int64_t max_body_bytes = 1 << 20;
  int64_t max_prompt_tokens = 0;      // 0: the context length
  double request_timeout_s = 600;
  double rate_limit_per_minute = 0;
  double rate_limit_burst = 0;        // 0: rate_limit_per_minute
};

struct HttpRequest {
  std::string method, path, body;
  std::string authorization;  // the Authorization header, "" when absent
  std::string remote;         // the client's address, for the access log
};

class Exchange;
struct RequestRecord;

// The body of a streaming reply, pulled piece by piece by the transport.
class ReplyStream {
 public:
  enum class Next { kData, kIdle, kEnd };
  ReplyStream(std::shared_ptr<Exchange> exchange, std::unique_ptr<RequestRecord> record);
  // Closing before the end (the client went away) cancels the generation.
  ~ReplyStream();
  // kData: `out` holds the next bytes; kIdle: nothing came within `wait` (send a keep-alive);
  // kEnd: the stream is over.
  Next next(std::string& out, std::chrono::milliseconds wait);

 private:
  std::shared_ptr<Exchange> exchange_;
  std::unique_ptr<RequestRecord> record_;
  bool ended_ = false;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::shared_ptr<ReplyStream> stream;  // set for stream: true (body empty)
};

class ApiService {
 public:
  ApiService(ServiceOptions options, metrics::Registry& registry);
  ~ApiService();

  // The engine, once loaded: until then every API request answers 503 (loading).
  void set_backend(Backend* backend);
  HttpReply handle(const HttpRequest& request);
  Health health() const;
  // Answers 503 to new requests from now on, waits up to `timeout` for those in flight to end,
  // cancels what is left; true when everything ended by itself.
  bool drain(std::chrono::milliseconds timeout);
  // Records a reply the transport produced itself (a body over the limit, a broken request line).
  void record_transport_error(const HttpRequest& request, int status);

  struct Metrics;

 private:
  friend class ReplyStream;
  friend struct RequestRecord;
  HttpReply generate(const HttpRequest& request, int endpoint, const std::string& key_id,
                     std::chrono::steady_clock::time_point arrival);
  void begin_request();
  void end_request();

  ServiceOptions options_;
  std::unique_ptr<Metrics> metrics_;
  RateLimiter limiter_;
  std::atomic<Backend*> backend_{nullptr};
  std::atomic<bool> draining_{false};
  std::mutex active_mutex_;
  std::condition_variable active_changed_;
  int64_t active_ = 0;
  std::vector<std::weak_ptr<Exchange>> in_flight_;  // for cancelling at the drain deadline
  int64_t created_;
};

}  // namespace tessera::server
