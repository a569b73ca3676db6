#include "engine/server/openai_response.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>

namespace tessera::server {

namespace {

using nlohmann::json;

// Text from the model may hold broken UTF-8 (a token boundary inside a character): replace it
// rather than fail the response.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json bytes_of(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(c);
  return out;
}

json usage_json(int64_t prompt, int64_t generated) {
  return {{"prompt_tokens", prompt}, {"completion_tokens", generated}, {"total_tokens", prompt + generated}};
}

}  // namespace

std::string sse(const std::string& json) { return "data: " + json + "\n\n"; }

std::string response_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

std::string models_body(const std::vector<std::string>& names, int64_t created) {
  json data = json::array();
  for (const auto& n : names) data.push_back({{"id", n}, {"object", "model"}, {"created", created}, {"owned_by", "tessera"}});
  return dump({{"object", "list"}, {"data", data}});
}

CompletionWriter::CompletionWriter(Endpoint endpoint, std::string id, std::string model, int64_t created, bool logprobs)
    : endpoint_(endpoint), id_(std::move(id)), model_(std::move(model)), created_(created), logprobs_(logprobs) {}

namespace {

json logprobs_json(Endpoint endpoint, const auto& tokens) {
  if (endpoint == Endpoint::kChat) {
    json content = json::array();
    for (const auto& t : tokens) {
      json top = json::array();
      for (const auto& alt : t.top) top.push_back({{"token", alt.token}, {"logprob", alt.logprob}, {"bytes", bytes_of(alt.token)}});
      content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes_of(t.token)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json out{{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
           {"text_offset", json::array()}};
  for (const auto& t : tokens) {
    out["tokens"].push_back(t.token);
    out["token_logprobs"].push_back(t.logprob);
    json top = json::object();
    for (const auto& alt : t.top) top[alt.token] = alt.logprob;
    out["top_logprobs"].push_back(top);
    out["text_offset"].push_back(t.text_offset);
  }
  return out;
}

}  // namespace

std::string CompletionWriter::chunk(const std::string& text, const std::vector<Logprob>& logprobs,
                                    const std::string& finish) {
  json choice{{"index", 0}};
  if (endpoint_ == Endpoint::kChat) {
    json delta = json::object();
    if (!role_sent_) delta["role"] = "assistant", role_sent_ = true;
    if (!text.empty() || finish.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = logprobs_ && !logprobs.empty() ? logprobs_json(endpoint_, logprobs) : json();
  choice["finish_reason"] = finish.empty() ? json() : json(finish);
  const char* object = endpoint_ == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
  return sse(dump({{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}, {"choices", {choice}}}));
}

std::string CompletionWriter::add(const TokenEvent& event) {
  std::vector<Logprob> added;
  if (logprobs_ && !event.token.empty()) {
    added.push_back({event.token, event.logprob, event.top_logprobs, text_.size()});
    tokens_.push_back(added.back());
  }
  text_ += event.text;
  prompt_tokens_ = std::max(prompt_tokens_, event.prompt_tokens);
  generated_tokens_ = std::max(generated_tokens_, event.generated_tokens);
  // OpenAI has no "cancelled": a request cut short by us ends as "length" would mislead, so the
  // reason passes through as the engine names it.
  if (!event.finish_reason.empty()) finish_reason_ = event.finish_reason;
  std::string out;
  if (endpoint_ == Endpoint::kChat && !role_sent_) out += chunk("", {}, "");  // the role comes first
  if (!event.text.empty() || !added.empty()) out += chunk(event.text, added, "");
  if (!event.finish_reason.empty()) out += chunk("", {}, event.finish_reason);
  return out;
}

std::string CompletionWriter::stream_end(bool include_usage) const {
  std::string out;
  if (include_usage) {
    const char* object = endpoint_ == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
    out += sse(dump({{"id", id_}, {"object", object}, {"created", created_}, {"model", model_},
                     {"choices", json::array()}, {"usage", usage_json(prompt_tokens_, generated_tokens_)}}));
  }
  return out + "data: [DONE]\n\n";
}

std::string CompletionWriter::body() const {
  json choice{{"index", 0}};
  if (endpoint_ == Endpoint::kChat)
    choice["message"] = {{"role", "assistant"}, {"content", text_}};
  else
    choice["text"] = text_;
  choice["logprobs"] = logprobs_ ? logprobs_json(endpoint_, tokens_) : json();
  choice["finish_reason"] = finish_reason_.empty() ? json() : json(finish_reason_);
  const char* object = endpoint_ == Endpoint::kChat ? "chat.completion" : "text_completion";
  return dump({{"id", id_}, {"object", object}, {"created", created_}, {"model", model_}, {"choices", {choice}},
               {"usage", usage_json(prompt_tokens_, generated_tokens_)}});
}

}  // namespace tessera::server
