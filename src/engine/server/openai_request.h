// The body of POST /v1/completions and /v1/chat/completions, parsed and checked field by field.
// Outside input: anything wrong is an ApiError 400 naming the field; nothing here crashes on
// hostile bytes (tests/fuzz has a driver).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/server/backend.h"

namespace tessera::server {

enum class Endpoint { kCompletions, kChat };

struct ApiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                  // "" when the client leaves it out: the base model
  std::string prompt;                 // completions, text prompt
  std::vector<int32_t> prompt_ids;    // completions, a prompt given as token ids
  bool prompt_is_ids = false;
  std::vector<ChatMessage> messages;  // chat
  int64_t max_tokens = -1;            // -1: not given (completions default 16, chat: up to the context)
  Sampling sampling;
  std::vector<std::string> stop;
  int64_t top_logprobs = -1;          // -1: no logprobs
  bool ignore_eos = false;            // vLLM's extension: run to max_tokens (benchmarks)
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
};

// Throws ApiError (400) for invalid JSON, a field of the wrong type or out of range, or a field
// this server does not know.
ApiRequest parse_api_request(const std::string& body, Endpoint endpoint);

}  // namespace tessera::server
