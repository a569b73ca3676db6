#include "io/data/chat_template.h"

#include "core/error.h"

namespace tessera::data {

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::chatml: return "chatml";
    case ChatTemplate::qwen3: return "qwen3";
    case ChatTemplate::llama3: return "llama3";
    case ChatTemplate::deepseek: return "deepseek";
  }
  return "?";
}

ChatTemplate resolve_chat_template(const std::string& name, const tok::Tokenizer& tokenizer) {
  for (ChatTemplate t : {ChatTemplate::chatml, ChatTemplate::qwen3, ChatTemplate::llama3, ChatTemplate::deepseek})
    if (name == chat_template_name(t)) return t;
  if (!name.empty()) fail("data.chat_template: unknown template \"{}\" (chatml, qwen3, llama3 or deepseek)", name);
  const std::string jinja = tokenizer.chat_template();
  if (jinja.find("<|im_start|>") != std::string::npos)
    return jinja.find("<think>") != std::string::npos ? ChatTemplate::qwen3 : ChatTemplate::chatml;
  if (jinja.find("<|start_header_id|>") != std::string::npos) return ChatTemplate::llama3;
  if (jinja.find("｜Assistant｜") != std::string::npos) return ChatTemplate::deepseek;
  fail("chat data needs a chat template and the tokenizer's is {}: set data.chat_template to chatml, "
       "qwen3, llama3 or deepseek", jinja.empty() ? "missing" : "not one Tessera knows");
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

// Python's str.strip / lstrip / rstrip of newlines only, as the Qwen3 template uses them.
std::string lstrip_newlines(const std::string& s) { return s.substr(std::min(s.find_first_not_of('\n'), s.size())); }
std::string rstrip_newlines(const std::string& s) {
  const size_t end = s.find_last_not_of('\n');
  return end == std::string::npos ? "" : s.substr(0, end + 1);
}

// Qwen3's template (without tools): assistant turns after the last user turn carry a think block
// (the message's own, or an empty one on the final turn); earlier turns lose their reasoning.
std::vector<ChatPiece> render_qwen3(const std::vector<Message>& messages) {
  size_t last_query = messages.size() - 1;
  for (size_t i = messages.size(); i-- > 0;)
    if (messages[i].role == "user") {
      last_query = i;
      break;
    }
  std::vector<ChatPiece> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    out.push_back({"<|im_start|>" + m.role + "\n", false});
    if (!is_assistant(m)) {
      out.push_back({m.content + "<|im_end|>", false});
    } else {
      std::string content = m.content, reasoning;
      if (const size_t close = content.rfind("</think>"); close != std::string::npos) {
        std::string before = rstrip_newlines(content.substr(0, content.find("</think>")));
        if (const size_t open = before.rfind("<think>"); open != std::string::npos) before = before.substr(open + 7);
        reasoning = lstrip_newlines(before);
        content = lstrip_newlines(content.substr(close + 8));
      }
      const bool think = i > last_query && (i + 1 == messages.size() || !reasoning.empty());
      const std::string body =
          think ? "<think>\n" + lstrip_newlines(rstrip_newlines(reasoning)) + "\n</think>\n\n" + lstrip_newlines(content)
                : content;
      out.push_back({body + "<|im_end|>", true});
    }
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
    case ChatTemplate::qwen3: return render_qwen3(messages);
    case ChatTemplate::llama3: return render_llama3(messages);
    case ChatTemplate::deepseek: return render_deepseek(messages);
  }
  return {};
}

const char* generation_prompt(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::chatml:
    case ChatTemplate::qwen3: return "<|im_start|>assistant\n";
    case ChatTemplate::llama3: return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case ChatTemplate::deepseek: return "<｜Assistant｜>";
  }
  return "";
}

}  // namespace tessera::data
