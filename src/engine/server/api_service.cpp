#include "engine/server/api_service.h"

#include <deque>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "engine/server/api_error.h"
#include "engine/server/openai_request.h"
#include "engine/server/openai_response.h"

namespace tessera::server {

using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string json_reply(const std::string& key, const std::string& value) {
  return nlohmann::json{{key, value}}.dump();
}

// The one access-log line of a request; `details` adds token counts, finish and error.
void log_access(const std::string& remote, const std::string& method, const std::string& path,
                const std::string& key_id, int status, double latency, const std::string& details = "") {
  spdlog::info("access: {} {} {} key={} status={}{} latency={:.3f}s", remote, method, path, key_id, status, details,
               latency);
}

}  // namespace

struct ApiService::Metrics {
  explicit Metrics(metrics::Registry& r)
      : registry(r),
        ttft(r.histogram("tessera_time_to_first_token_seconds", "Time from a request's arrival to its first token",
                         metrics::latency_buckets())),
        itl(r.histogram("tessera_inter_token_latency_seconds", "Time between two tokens of one request",
                        metrics::latency_buckets())),
        e2e(r.histogram("tessera_e2e_request_latency_seconds", "Time from a request's arrival to its last byte",
                        metrics::latency_buckets())),
        queue(r.histogram("tessera_request_queue_time_seconds", "Time a request waited before its prompt was scheduled",
                          metrics::latency_buckets())),
        running(r.gauge("tessera_requests_running", "Requests in the running batch")),
        waiting(r.gauge("tessera_requests_waiting", "Requests waiting for the batch")),
        kv_usage(r.gauge("tessera_kv_cache_usage_ratio", "Fraction of KV cache blocks in use")),
        prompt_tokens(r.counter("tessera_prompt_tokens_total", "Prompt tokens of answered requests")),
        generation_tokens(r.counter("tessera_generation_tokens_total", "Tokens generated")) {}

  metrics::Counter& requests(int status) {
    return registry.counter("tessera_requests_total", "HTTP API requests by status (499: the client went away)",
                            {{"status", std::to_string(status)}});
  }
  metrics::Counter& finished(const std::string& reason) {
    return registry.counter("tessera_requests_finished_total", "Generations by how they ended", {{"reason", reason}});
  }

  metrics::Registry& registry;
  metrics::Histogram &ttft, &itl, &e2e, &queue;
  metrics::Gauge &running, &waiting, &kv_usage;
  metrics::Counter &prompt_tokens, &generation_tokens;
};

// One generation between the engine's thread (push) and the HTTP thread (take).
class Exchange {
 public:
  struct Timed {
    TokenEvent event;
    Clock::time_point at;
  };

  void push(const TokenEvent& event) {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    events_.push_back({event, Clock::now()});
    ended_ = !event.finish_reason.empty();
    changed_.notify_all();
  }
  // Waits until an event or `until`; moves every waiting event to `out`.
  void take(std::vector<Timed>& out, Clock::time_point until) {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, until, [&] { return !events_.empty(); });
    out.assign(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
    events_.clear();
  }
  // The engine's cancel runs outside our lock: the engine may hold its own while it calls push().
  void started(Backend* backend, uint64_t id) {
    bool wanted;
    {
      std::lock_guard lock(mutex_);
      backend_ = backend, id_ = id;
      wanted = cancel_wanted_;
    }
    if (wanted) backend->cancel(id);
  }
  void cancel() {
    Backend* backend;
    {
      std::lock_guard lock(mutex_);
      if (cancel_wanted_) return;
      cancel_wanted_ = true;
      backend = backend_;
    }
    if (backend) backend->cancel(id_);
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Timed> events_;
  bool ended_ = false;
  Backend* backend_ = nullptr;
  uint64_t id_ = 0;
  bool cancel_wanted_ = false;
};

// The accounting of one generation: latencies, token counts, status and the access-log line.
// It counts as in flight (what drain() waits for) from its making until it is destroyed, which
// for a stream is after the transport wrote the last byte.
struct RequestRecord {
  RequestRecord(ApiService& service, const HttpRequest& request, std::string key_id, Clock::time_point arrival,
                CompletionWriter writer, Clock::time_point deadline, bool include_usage)
      : service(service), method(request.method), path(request.path), remote(request.remote),
        key_id(std::move(key_id)), arrival(arrival), deadline(deadline), include_usage(include_usage),
        writer(std::move(writer)) {
    service.begin_request();
  }
  ~RequestRecord() { service.end_request(); }
  RequestRecord(const RequestRecord&) = delete;
  RequestRecord& operator=(const RequestRecord&) = delete;

  // Folds an event into the response and the latency histograms; returns its stream bytes.
  std::string add(const Exchange::Timed& t) {
    auto& m = *service.metrics_;
    const bool token = !t.event.token.empty() || !t.event.text.empty() || t.event.generated_tokens > generated;
    if (token) {
      if (!last) m.ttft.observe(seconds(t.at - arrival));
      else m.itl.observe(seconds(t.at - *last));
      last = t.at;
    }
    generated = std::max(generated, t.event.generated_tokens);
    if (t.event.queue_seconds >= 0) m.queue.observe(t.event.queue_seconds);
    if (!t.event.error.empty()) error = t.event.error;
    return writer.add(t.event);
  }

  void finish(int status) {
    if (done) return;
    done = true;
    auto& m = *service.metrics_;
    const double latency = seconds(Clock::now() - arrival);
    m.e2e.observe(latency);
    m.requests(status).inc();
    const std::string reason = writer.finish_reason().empty() ? "cancelled" : writer.finish_reason();
    m.finished(reason).inc();
    m.prompt_tokens.inc(static_cast<double>(writer.prompt_tokens()));
    m.generation_tokens.inc(static_cast<double>(writer.generated_tokens()));
    log_access(remote, method, path, key_id, status, latency,
               fmt::format(" prompt_tokens={} generated_tokens={} finish={}{}", writer.prompt_tokens(),
                           writer.generated_tokens(), reason, error.empty() ? "" : " error=\"" + error + "\""));
  }

  ApiService& service;
  std::string method, path, remote, key_id;
  Clock::time_point arrival, deadline;
  bool include_usage;
  CompletionWriter writer;
  std::optional<Clock::time_point> last;
  int64_t generated = 0;
  std::string error;
  bool done = false;
};

ReplyStream::ReplyStream(std::shared_ptr<Exchange> exchange, std::unique_ptr<RequestRecord> record)
    : exchange_(std::move(exchange)), record_(std::move(record)) {}

ReplyStream::~ReplyStream() {
  if (record_->done) return;
  exchange_->cancel();
  record_->finish(499);
}

ReplyStream::Next ReplyStream::next(std::string& out, std::chrono::milliseconds wait) {
  out.clear();
  if (ended_) return Next::kEnd;
  const auto now = Clock::now();
  if (now >= record_->deadline) {
    // Out of time: cancel, say so in the stream's own error shape, end it.
    exchange_->cancel();
    ApiError timeout(504, "timeout_error", "timeout", "the request ran past request_timeout_s");
    out = sse(timeout.body()) + "data: [DONE]\n\n";
    ended_ = true;
    record_->finish(504);
    return Next::kData;
  }
  std::vector<Exchange::Timed> events;
  exchange_->take(events, std::min(now + wait, record_->deadline));
  if (events.empty()) return Next::kIdle;
  for (const auto& t : events) {
    if (t.event.finish_reason == "error") {  // the status is sent already: the error goes in the stream
      record_->add(t);
      out += sse(ApiError(500, "server_error", "engine_error", t.event.error).body()) + "data: [DONE]\n\n";
      ended_ = true;
      record_->finish(500);
      break;
    }
    out += record_->add(t);
    if (!t.event.finish_reason.empty()) {
      out += record_->writer.stream_end(record_->include_usage);
      ended_ = true;
      record_->finish(200);
    }
  }
  return Next::kData;
}

ApiService::ApiService(ServiceOptions options, metrics::Registry& registry)
    : options_(std::move(options)),
      metrics_(std::make_unique<Metrics>(registry)),
      limiter_(options_.rate_limit_per_minute,
               options_.rate_limit_burst > 0 ? options_.rate_limit_burst : std::max(1.0, options_.rate_limit_per_minute)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()) {
  registry.on_collect([this] {
    Backend* backend = backend_.load();
    if (!backend) return;
    const EngineStats s = backend->stats();
    metrics_->running.set(static_cast<double>(s.running));
    metrics_->waiting.set(static_cast<double>(s.waiting));
    metrics_->kv_usage.set(s.kv_cache_usage);
  });
}

ApiService::~ApiService() = default;

void ApiService::set_backend(Backend* backend) { backend_ = backend; }

Health ApiService::health() const {
  if (draining_) return {false, "draining"};
  if (!backend_.load()) return {false, "loading"};
  return {true, "ok"};
}

void ApiService::record_transport_error(const HttpRequest& request, int status) {
  metrics_->requests(status).inc();
  log_access(request.remote, request.method, request.path, "-", status, 0);
}

void ApiService::begin_request() {
  std::lock_guard lock(active_mutex_);
  ++active_;
}

void ApiService::end_request() {
  std::lock_guard lock(active_mutex_);
  --active_;
  active_changed_.notify_all();
}

bool ApiService::drain(std::chrono::milliseconds timeout) {
  draining_ = true;
  std::unique_lock lock(active_mutex_);
  if (active_changed_.wait_for(lock, timeout, [&] { return active_ == 0; })) return true;
  spdlog::warn("drain: {} request(s) still running after {} ms: cancelling them", active_, timeout.count());
  std::vector<std::shared_ptr<Exchange>> running;
  for (auto& weak : in_flight_)
    if (auto exchange = weak.lock()) running.push_back(exchange);
  lock.unlock();
  for (auto& exchange : running) exchange->cancel();
  lock.lock();
  active_changed_.wait_for(lock, std::chrono::seconds(5), [&] { return active_ == 0; });
  return false;
}

HttpReply ApiService::handle(const HttpRequest& request) {
  const auto arrival = Clock::now();
  if (request.method == "GET" && request.path == "/health") {
    const Health h = health();
    return {h.ok ? 200 : 503, "application/json", json_reply("status", h.status), nullptr};
  }
  if (request.method == "GET" && request.path == "/metrics")
    return {200, metrics::kTextContentType, metrics_->registry.text(), nullptr};

  std::string key_id = "-";
  try {
    const bool completions = request.path == "/v1/completions", chat = request.path == "/v1/chat/completions";
    const bool models = request.path == "/v1/models";
    if (!((completions || chat) && request.method == "POST") && !(models && request.method == "GET"))
      throw not_found(fmt::format("no route {} {}", request.method, request.path));
    if (draining_) throw unavailable("the server is shutting down", "draining");
    if (!backend_.load()) throw unavailable("the model is still loading", "loading");
    if (!options_.keys.empty()) {
      if (request.authorization.empty()) throw unauthorized("missing API key: send Authorization: Bearer KEY");
      auto id = options_.keys.check(request.authorization);
      if (!id) throw unauthorized("invalid API key");
      key_id = *id;
    }
    if (!limiter_.allow(key_id)) throw too_many("rate limit reached for this API key", "rate_limit_exceeded");
    if (models) {
      std::vector<std::string> names{options_.model_name};
      names.insert(names.end(), options_.adapters.begin(), options_.adapters.end());
      metrics_->requests(200).inc();
      log_access(request.remote, request.method, request.path, key_id, 200, seconds(Clock::now() - arrival));
      return {200, "application/json", models_body(names, created_), nullptr};
    }
    if (static_cast<int64_t>(request.body.size()) > options_.max_body_bytes)
      throw too_large(fmt::format("the body is {} bytes; the limit is {}", request.body.size(), options_.max_body_bytes));
    return generate(request, chat ? int(Endpoint::kChat) : int(Endpoint::kCompletions), key_id, arrival);
  } catch (const ApiError& e) {
    metrics_->requests(e.status).inc();
    log_access(request.remote, request.method, request.path, key_id, e.status, seconds(Clock::now() - arrival),
               fmt::format(" error=\"{}\"", e.what()));
    return {e.status, "application/json", e.body(), nullptr};
  }
}

HttpReply ApiService::generate(const HttpRequest& request, int endpoint_value, const std::string& key_id,
                               Clock::time_point arrival) {
  const auto endpoint = static_cast<Endpoint>(endpoint_value);
  Backend& backend = *backend_.load();
  const ApiRequest api = parse_api_request(request.body, endpoint);

  GenerationRequest g;
  if (!api.model.empty() && api.model != options_.model_name) {
    if (std::find(options_.adapters.begin(), options_.adapters.end(), api.model) == options_.adapters.end())
      throw not_found(fmt::format("model '{}' is not served here (see GET /v1/models)", api.model), "model_not_found");
    g.adapter = api.model;
  }
  try {
    g.prompt = endpoint == Endpoint::kChat ? backend.encode_chat(api.messages)
               : api.prompt_is_ids        ? api.prompt_ids
                                          : backend.encode(api.prompt);
  } catch (const Error& e) {
    throw bad_request(e.what(), endpoint == Endpoint::kChat ? "messages" : "prompt");
  }
  const int64_t context = backend.context_length();
  const int64_t prompt_limit = options_.max_prompt_tokens > 0 ? std::min(options_.max_prompt_tokens, context - 1) : context - 1;
  if (static_cast<int64_t>(g.prompt.size()) > prompt_limit)
    throw bad_request(fmt::format("the prompt is {} tokens; at most {} are accepted", g.prompt.size(), prompt_limit),
                      endpoint == Endpoint::kChat ? "messages" : "prompt", "context_length_exceeded");
  g.sampling = api.sampling;
  g.stop = api.stop;
  g.ignore_eos = api.ignore_eos;
  g.top_logprobs = api.top_logprobs;
  const int64_t room = context - static_cast<int64_t>(g.prompt.size());
  g.max_new_tokens = std::min(room, api.max_tokens > 0 ? api.max_tokens : endpoint == Endpoint::kChat ? room : 16);

  const std::string model = api.model.empty() ? options_.model_name : api.model;
  CompletionWriter writer(endpoint, response_id(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-"), model,
                          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
                          api.top_logprobs >= 0);
  const auto deadline = arrival + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.request_timeout_s));
  auto record = std::make_unique<RequestRecord>(*this, request, key_id, arrival, std::move(writer), deadline, api.include_usage);
  auto exchange = std::make_shared<Exchange>();
  uint64_t id = 0;
  try {
    id = backend.submit(g, [exchange](const TokenEvent& e) { exchange->push(e); });
  } catch (const QueueFull&) {
    throw too_many("the request queue is full; retry later", "queue_full");
  } catch (const Closed&) {
    throw unavailable("the server is shutting down", "draining");
  } catch (const Error& e) {
    throw bad_request(e.what());
  }
  exchange->started(&backend, id);
  {
    std::lock_guard lock(active_mutex_);
    std::erase_if(in_flight_, [](const auto& w) { return w.expired(); });
    in_flight_.push_back(exchange);
  }

  if (api.stream) {
    HttpReply reply{200, "text/event-stream", "", nullptr};
    reply.stream = std::make_shared<ReplyStream>(exchange, std::move(record));
    return reply;
  }
  // Whole reply: collect until the end or the deadline.
  std::vector<Exchange::Timed> events;
  for (;;) {
    exchange->take(events, record->deadline);
    std::string finish;
    for (const auto& t : events) {
      record->add(t);
      if (!t.event.finish_reason.empty()) finish = t.event.finish_reason;
    }
    if (finish == "error") {
      record->finish(500);
      return {500, "application/json", ApiError(500, "server_error", "engine_error", record->error).body(), nullptr};
    }
    if (!finish.empty()) {
      record->finish(200);
      return {200, "application/json", record->writer.body(), nullptr};
    }
    if (Clock::now() >= record->deadline) {
      exchange->cancel();
      record->finish(504);
      return {504, "application/json",
              ApiError(504, "timeout_error", "timeout", "the request ran past request_timeout_s").body(), nullptr};
    }
  }
}

}  // namespace tessera::server
