#include "io/data/jsonl.h"

#include <array>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_error.h"
#include "io/tokenizer/utf8.h"

namespace tessera::data {

const char* format_name(Format format) {
  switch (format) {
    case Format::text: return "text";
    case Format::completion: return "completion";
    case Format::chat: return "chat";
  }
  return "?";
}

namespace {

using nlohmann::json;

// nlohmann rejects invalid UTF-8 as a parse error; to name the field instead, find the last key
// that starts before the bad byte (a heuristic, but the line is rejected either way).
std::string field_before(std::string_view line, size_t offset) {
  static constexpr std::array<std::string_view, 5> keys{"text", "prompt", "completion", "content", "role"};
  std::string best;
  size_t best_at = 0;
  for (std::string_view key : keys) {
    const std::string quoted = "\"" + std::string(key) + "\"";
    size_t at = line.substr(0, offset).rfind(quoted);
    if (at != std::string_view::npos && (best.empty() || at > best_at)) best = std::string(key), best_at = at;
  }
  return best;
}

json parse_object(std::string_view line, const std::string& where) {
  size_t bad = tok::find_invalid_utf8(line);
  if (bad != std::string_view::npos) {
    std::string field = field_before(line, bad);
    if (field.empty()) fail("{}: invalid UTF-8 at byte {}", where, bad);
    fail("{}: invalid UTF-8 in \"{}\"", where, field);
  }
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    // "line 1, column 5: ..." -> "column 5: ..."; a short excerpt, never the whole line.
    std::string what = json_parse_message(e, line);
    size_t at = what.find("column ");
    fail("{}: invalid JSON: {}", where, at == std::string::npos ? what : what.substr(at));
  }
  if (!j.is_object()) fail("{}: expected a JSON object, got {}", where, j.type_name());
  return j;
}

const json& field(const json& obj, const std::string& key, const std::string& name, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) fail("{}: missing field \"{}\"", where, name);
  return *it;
}

std::string string_field(const json& obj, const std::string& key, const std::string& name,
                         const std::string& where) {
  const json& v = field(obj, key, name, where);
  if (!v.is_string()) fail("{}: \"{}\" must be a string, got {}", where, name, v.type_name());
  return v.get<std::string>();
}

std::vector<Message> parse_messages(const json& obj, const std::string& where) {
  const json& list = field(obj, "messages", "messages", where);
  if (!list.is_array()) fail("{}: \"messages\" must be an array, got {}", where, list.type_name());
  if (list.empty()) fail("{}: \"messages\" is empty", where);
  std::vector<Message> messages;
  for (size_t k = 0; k < list.size(); ++k) {
    const std::string name = "messages[" + std::to_string(k) + "]";
    if (!list[k].is_object()) fail("{}: \"{}\" must be an object, got {}", where, name, list[k].type_name());
    Message m{string_field(list[k], "role", name + ".role", where),
              string_field(list[k], "content", name + ".content", where)};
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      fail("{}: \"{}.role\" is \"{}\"; expected system, user or assistant", where, name, m.role);
    messages.push_back(std::move(m));
  }
  return messages;
}

}  // namespace

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

Example parse_jsonl_line(std::string_view line, Format format, const std::string& where) {
  const json obj = parse_object(line, where);
  Example ex;
  switch (format) {
    case Format::text: ex.text = string_field(obj, "text", "text", where); break;
    case Format::completion:
      ex.prompt = string_field(obj, "prompt", "prompt", where);
      ex.completion = string_field(obj, "completion", "completion", where);
      break;
    case Format::chat: ex.messages = parse_messages(obj, where); break;
  }
  return ex;
}

Format detect_format(std::string_view line, const std::string& where) {
  const json obj = parse_object(line, where);
  if (obj.contains("messages")) return Format::chat;
  if (obj.contains("prompt") || obj.contains("completion")) return Format::completion;
  if (obj.contains("text")) return Format::text;
  fail("{}: none of the fields \"text\", \"prompt\"/\"completion\" or \"messages\" (set data.format?)", where);
}

}  // namespace tessera::data
