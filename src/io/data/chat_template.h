// Built-in chat templates: the three families' Jinja templates written out as code (no Jinja
// interpreter). Rendering yields pieces marked trained or not, so the loss covers exactly the
// assistant turns' content and their end-of-turn token.
#pragma once

#include <string>
#include <vector>

#include "io/data/example.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::data {

enum class ChatTemplate {
  chatml,    // Qwen2 / 2.5: <|im_start|>role\ncontent<|im_end|>\n
  qwen3,     // chatml with Qwen3's think blocks on the assistant turns after the last user turn
  llama3,    // <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  deepseek,  // DeepSeek V3 / R1: <｜begin▁of▁sentence｜>system<｜User｜>..<｜Assistant｜>..<｜end▁of▁sentence｜>
};

const char* chat_template_name(ChatTemplate t);

// data.chat_template when set (chatml | qwen3 | llama3 | deepseek); else detected from the markers in the
// tokenizer's own chat template. Neither: an error asking to set data.chat_template.
ChatTemplate resolve_chat_template(const std::string& name, const tok::Tokenizer& tokenizer);

struct ChatPiece {
  std::string text;
  bool trained = false;  // its tokens carry the loss
};

// The conversation as the template renders it (no generation prompt). Special-token strings stay
// text here; encoding turns them into their ids.
std::vector<ChatPiece> render_chat(ChatTemplate t, const std::vector<Message>& messages);

// What the template appends to open the assistant's turn (Jinja's add_generation_prompt): a
// prompt for generation is render_chat's pieces followed by this.
const char* generation_prompt(ChatTemplate t);

}  // namespace tessera::data
