// OpenAI's response shapes, built from the engine's token events: the whole completion
// (text_completion / chat.completion) and the server-sent-event chunks of a stream
// (text_completion / chat.completion.chunk, then "data: [DONE]").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/server/backend.h"
#include "engine/server/openai_request.h"

namespace tessera::server {

class CompletionWriter {
 public:
  CompletionWriter(Endpoint endpoint, std::string id, std::string model, int64_t created, bool logprobs);

  // Adds one event to the whole response and returns its stream chunks ("data: {...}\n\n" lines;
  // the chat role chunk comes first; an event with no text and no end gives none).
  std::string add(const TokenEvent& event);
  // The stream's end: the usage chunk when asked for, then [DONE].
  std::string stream_end(bool include_usage) const;
  // The non-streaming body.
  std::string body() const;

  const std::string& finish_reason() const { return finish_reason_; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t generated_tokens() const { return generated_tokens_; }

 private:
  struct Logprob {
    std::string token;
    double logprob;
    std::vector<TopLogprob> top;
    size_t text_offset;
  };
  std::string chunk(const std::string& text, const std::vector<Logprob>& logprobs, const std::string& finish);

  Endpoint endpoint_;
  std::string id_, model_;
  int64_t created_;
  bool logprobs_;
  bool role_sent_ = false;
  std::string text_;
  std::vector<Logprob> tokens_;
  std::string finish_reason_;
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0;
};

// "data: <json>\n\n"
std::string sse(const std::string& json);

// GET /v1/models: the base model and each adapter.
std::string models_body(const std::vector<std::string>& names, int64_t created);

// An id for a response: prefix + 24 random hex digits.
std::string response_id(const char* prefix);

}  // namespace tessera::server
