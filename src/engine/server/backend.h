// What the HTTP front end needs from the inference engine, and nothing more: tokenizing prompts
// (chat templates included), submitting a generation with a per-token callback, cancelling it,
// and the engine's statistics. GeneratorBackend adapts the real Generator
// (engine/inference/generator.h); protocol tests drive the server with a scripted one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace tessera::server {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

struct Sampling {
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  int64_t top_k = 0;  // 0: off
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  std::optional<uint64_t> seed;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;
  Sampling sampling;
  int64_t max_new_tokens = 16;
  std::vector<std::string> stop;  // stop strings (not part of the text returned)
  bool ignore_eos = false;        // generate max_new_tokens even past EOS
  int64_t top_logprobs = -1;      // -1: no logprobs; 0..20: the chosen token's and this many alternatives
  std::string adapter;            // "" for the base model
};

struct TopLogprob {
  std::string token;
  double logprob = 0;
};

// One event per generated token, and a last one with finish_reason set (it may carry a token too).
struct TokenEvent {
  std::string text;                 // text that became final with this token (may be empty)
  std::string token;                // the token's own text (for logprobs)
  double logprob = 0;
  std::vector<TopLogprob> top_logprobs;
  std::string finish_reason;        // "" until the end: stop, length, cancelled, error
  std::string error;                // with finish_reason error
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double queue_seconds = -1;        // time waiting before the prompt was scheduled (-1: unknown)
};

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  double kv_cache_usage = 0;  // fraction of KV blocks in use
};

// submit() throws this when the engine's queue is full (HTTP 429).
class QueueFull : public Error {
 public:
  QueueFull() : Error("the request queue is full") {}
};

// submit() when the engine no longer accepts requests (draining, shutting down: HTTP 503).
class Closed : public Error {
 public:
  Closed() : Error("the server is shutting down") {}
};

class Backend {
 public:
  virtual ~Backend() = default;
  // The prompt's ids as the tokenizer encodes it for generation (BOS where the model wants one).
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // The conversation rendered by the model's chat template with the assistant's turn opened.
  virtual std::vector<int32_t> encode_chat(const std::vector<ChatMessage>& messages) const = 0;
  // The callback runs on the engine's thread and must not block; it is never called after the
  // event that carries a finish_reason. Throws QueueFull, Closed, or Error for a request it refuses.
  virtual uint64_t submit(const GenerationRequest& request, std::function<void(const TokenEvent&)> on_event) = 0;
  virtual void cancel(uint64_t id) = 0;  // the request ends soon with finish_reason "cancelled"
  virtual EngineStats stats() const = 0;
  virtual int64_t context_length() const = 0;  // the most tokens a sequence may hold
};

}  // namespace tessera::server
