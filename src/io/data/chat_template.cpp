#include "io/data/chat_template.h"

#include "core/error.h"

namespace tessera::data {

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::chatml: return "chatml";
    case ChatTemplate::llama3: return "llama3";
    case ChatTemplate::deepseek: return "deepseek";
  }
  return "?";
}

ChatTemplate resolve_chat_template(const std::string& name, const tok::Tokenizer& tokenizer) {
  for (ChatTemplate t : {ChatTemplate::chatml, ChatTemplate::llama3, ChatTemplate::deepseek})
    if (name == chat_template_name(t)) return t;
  if (!name.empty()) fail("data.chat_template: unknown template \"{}\" (chatml, llama3 or deepseek)", name);
  const std::string jinja = tokenizer.chat_template();
  if (jinja.find("<|im_start|>") != std::string::npos) return ChatTemplate::chatml;
  if (jinja.find("<|start_header_id|>") != std::string::npos) return ChatTemplate::llama3;
  if (jinja.find("｜Assistant｜") != std::string::npos) return ChatTemplate::deepseek;
  fail("chat data needs a chat template and the tokenizer's is {}: set data.chat_template to chatml, "
       "llama3 or deepseek", jinja.empty() ? "missing" : "not one Tessera knows");
}

namespace {

// Jinja's `trim` (Python str.strip) on the whitespace that occurs in practice.
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool is_assistant(const Message& m) { return m.role == "assistant"; }

std::vector<ChatPiece> render_chatml(const std::vector<Message>& messages) {
  std::vector<ChatPiece> out;
  for (const Message& m : messages) {
    out.push_back({"<|im_start|>" + m.role + "\n", false});
    out.push_back({m.content + "<|im_end|>", is_assistant(m)});
    out.push_back({"\n", false});
  }
  return out;
}

// The template trims every message and puts bos_token before the first.
std::vector<ChatPiece> render_llama3(const std::vector<Message>& messages) {
  std::vector<ChatPiece> out{{"<|begin_of_text|>", false}};
  for (const Message& m : messages) {
    out.push_back({"<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", false});
    out.push_back({trim(m.content) + "<|eot_id|>", is_assistant(m)});
  }
  return out;
}

// The template gathers every system message (joined by a blank line) right after bos_token and
// gives users and assistants role markers; only assistant turns end with end-of-sentence.
std::vector<ChatPiece> render_deepseek(const std::vector<Message>& messages) {
  std::string system;
  bool first_system = true;
  for (const Message& m : messages) {
    if (m.role != "system") continue;
    system += (first_system ? "" : "\n\n") + m.content;
    first_system = false;
  }
  std::vector<ChatPiece> out{{"<｜begin▁of▁sentence｜>" + system, false}};
  for (const Message& m : messages) {
    if (m.role == "user") out.push_back({"<｜User｜>" + m.content, false});
    if (m.role == "assistant") {
      out.push_back({"<｜Assistant｜>", false});
      out.push_back({m.content + "<｜end▁of▁sentence｜>", true});
    }
  }
  return out;
}

}  // namespace

std::vector<ChatPiece> render_chat(ChatTemplate t, const std::vector<Message>& messages) {
  switch (t) {
    case ChatTemplate::chatml: return render_chatml(messages);
    case ChatTemplate::llama3: return render_llama3(messages);
    case ChatTemplate::deepseek: return render_deepseek(messages);
  }
  return {};
}

}  // namespace tessera::data
