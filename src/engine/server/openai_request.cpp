#include "engine/server/openai_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>

#include <nlohmann/json.hpp>

#include "engine/server/api_error.h"

namespace tessera::server {

namespace {

using nlohmann::json;

std::string kind(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

double number(const json& v, const char* field, double lo, double hi) {
  if (!v.is_number()) throw bad_request(fmt::format("{}: expected a number, got {}", field, kind(v)), field);
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) throw bad_request(fmt::format("{}: must be from {} to {}, got {}", field, lo, hi, x), field);
  return x;
}

int64_t integer(const json& v, const char* field, int64_t lo, int64_t hi) {
  if (!v.is_number_integer())
    throw bad_request(fmt::format("{}: expected an integer, got {}", field, kind(v)), field);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    throw bad_request(fmt::format("{}: must be from {} to {}, got {}", field, lo, hi, v.get<uint64_t>()), field);
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) throw bad_request(fmt::format("{}: must be from {} to {}, got {}", field, lo, hi, x), field);
  return x;
}

bool boolean(const json& v, const char* field) {
  if (!v.is_boolean()) throw bad_request(fmt::format("{}: expected true or false, got {}", field, kind(v)), field);
  return v.get<bool>();
}

std::string string(const json& v, const char* field) {
  if (!v.is_string()) throw bad_request(fmt::format("{}: expected a string, got {}", field, kind(v)), field);
  return v.get<std::string>();
}

void read_prompt(const json& v, ApiRequest& r) {
  // A string, a one-element array of strings, or token ids (an array of integers, or one such array).
  const json* p = &v;
  if (v.is_array() && v.size() == 1 && (v[0].is_string() || v[0].is_array())) p = &v[0];
  if (p->is_string()) return void(r.prompt = p->get<std::string>());
  if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_number_integer(); })) {
    for (const json& id : *p) r.prompt_ids.push_back(static_cast<int32_t>(integer(id, "prompt", 0, INT32_MAX)));
    r.prompt_is_ids = true;
    return;
  }
  if (v.is_array() && v.size() > 1)
    throw bad_request("prompt: one prompt per request (send several requests for a batch)", "prompt");
  throw bad_request("prompt: expected a string or an array of token ids, got " + kind(v), "prompt");
}

std::string message_content(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  // The array form: [{"type": "text", "text": "..."}]; text parts are joined.
  if (!content.is_array()) throw bad_request("messages: content must be a string or an array of text parts", "messages");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") || !part["text"].is_string())
      throw bad_request("messages: content parts must be {\"type\": \"text\", \"text\": \"...\"}", "messages");
    text += part["text"].get<std::string>();
  }
  return text;
}

void read_messages(const json& v, ApiRequest& r) {
  if (!v.is_array() || v.empty()) throw bad_request("messages: expected a non-empty array of messages", "messages");
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) throw bad_request(where + ": expected an object with role and content", "messages");
    const json role = m.value("role", json());
    if (!role.is_string() || (role != "system" && role != "user" && role != "assistant" && role != "developer"))
      throw bad_request(where + ".role: expected system, user or assistant", "messages");
    if (!m.contains("content")) throw bad_request(where + ".content: missing", "messages");
    // OpenAI's "developer" role is its newer name for system.
    r.messages.push_back({role == "developer" ? "system" : role.get<std::string>(), message_content(m["content"])});
  }
}

void read_stop(const json& v, ApiRequest& r) {
  if (v.is_null()) return;
  if (v.is_string()) return void(r.stop = {v.get<std::string>()});
  if (!v.is_array() || v.size() > 4) throw bad_request("stop: expected a string or up to 4 strings", "stop");
  for (const json& s : v) {
    if (!s.is_string() || s.get<std::string>().empty()) throw bad_request("stop: expected non-empty strings", "stop");
    r.stop.push_back(s.get<std::string>());
  }
}

}  // namespace

ApiRequest parse_api_request(const std::string& body, Endpoint endpoint) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) throw bad_request("the body is not valid JSON", "", "invalid_json");
  if (!doc.is_object()) throw bad_request("the body must be a JSON object, got " + kind(doc), "", "invalid_json");
  ApiRequest r;
  r.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::kChat;
  bool logprobs_flag = false;
  int64_t top_logprobs = 0;
  for (const auto& [key, v] : doc.items()) {
    const char* k = key.c_str();
    if (v.is_null() && key != "prompt" && key != "messages") continue;  // clients send null for "default"
    if (key == "model") r.model = string(v, k);
    else if (key == "prompt" && !chat) read_prompt(v, r);
    else if (key == "messages" && chat) read_messages(v, r);
    else if (key == "max_tokens" || (chat && key == "max_completion_tokens")) r.max_tokens = integer(v, k, 1, INT32_MAX);
    else if (key == "temperature") r.sampling.temperature = number(v, k, 0, 2);
    else if (key == "top_p") r.sampling.top_p = number(v, k, 0, 1);
    else if (key == "top_k") r.sampling.top_k = std::max<int64_t>(0, integer(v, k, -1, INT32_MAX));  // -1: off (vLLM)
    else if (key == "min_p") r.sampling.min_p = number(v, k, 0, 1);
    else if (key == "repetition_penalty") r.sampling.repetition_penalty = number(v, k, 0.01, 10);
    else if (key == "presence_penalty") r.sampling.presence_penalty = number(v, k, -2, 2);
    else if (key == "frequency_penalty") r.sampling.frequency_penalty = number(v, k, -2, 2);
    else if (key == "seed") r.sampling.seed = static_cast<uint64_t>(integer(v, k, INT64_MIN, INT64_MAX));
    else if (key == "stop") read_stop(v, r);
    else if (key == "stream") r.stream = boolean(v, k);
    else if (key == "ignore_eos") r.ignore_eos = boolean(v, k);
    else if (key == "stream_options") {
      if (!v.is_object()) throw bad_request("stream_options: expected an object", k);
      if (v.contains("include_usage")) r.include_usage = boolean(v["include_usage"], "stream_options.include_usage");
    } else if (key == "n") integer(v, k, 1, 1);
    else if (key == "logprobs" && chat) logprobs_flag = boolean(v, k);
    else if (key == "logprobs") r.top_logprobs = integer(v, k, 0, 20);  // completions: the number of alternatives
    else if (key == "top_logprobs" && chat) top_logprobs = integer(v, k, 0, 20);
    else if (key == "user") string(v, k);  // an end-user id for abuse tracking: accepted, unused
    else throw bad_request(fmt::format("unknown field '{}'", key), key, "unknown_field");
  }
  if (chat) {
    if (top_logprobs > 0 && !logprobs_flag) throw bad_request("top_logprobs: needs logprobs: true", "top_logprobs");
    if (logprobs_flag) r.top_logprobs = top_logprobs;
    if (r.messages.empty()) throw bad_request("messages: required", "messages", "missing_field");
  } else if (!doc.contains("prompt")) {
    throw bad_request("prompt: required", "prompt", "missing_field");
  }
  return r;
}

}  // namespace tessera::server
