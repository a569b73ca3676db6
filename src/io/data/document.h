// Turns examples into token documents: ids plus which of them carry the loss.
//
// Rules (README "Data" documents them):
//  - text:       [BOS] text EOS; every token after the first is a target.
//  - completion: [BOS] prompt completion EOS; only completion tokens and EOS are targets.
//  - chat:       the rendered template, no extra BOS/EOS (the template has its own); only the
//                assistant turns' content and end-of-turn token are targets.
// BOS is added when the tokenizer asks for it: add_bos_token from tokenizer_config.json, or, when
// that is not set, whenever encode(text, add_special_tokens=true) starts with the BOS token. Pieces
// are encoded separately (add_special_tokens=false), so no token straddles a prompt/answer boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "io/data/chat_template.h"
#include "io/data/example.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::data {

struct Document {
  std::vector<int32_t> ids;
  std::vector<uint8_t> targets;  // targets[i]: ids[i] is predicted from the tokens before it
};

class DocumentEncoder {
 public:
  // chat_template is used by Format::chat only.
  DocumentEncoder(const tok::Tokenizer& tokenizer, Format format, ChatTemplate chat_template);
  Document encode(const Example& example) const;
  // Prompts for generation, encoded as training encodes them: [BOS] text (no EOS); a conversation
  // rendered by the chat template with the assistant's turn opened (generation_prompt).
  std::vector<int32_t> prompt(std::string_view text) const;
  std::vector<int32_t> chat_prompt(const std::vector<Message>& messages) const;

  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }  // the tokenizer's pad token, else EOS

 private:
  void append(Document& doc, std::string_view text, bool trained) const;

  const tok::Tokenizer& tokenizer_;
  Format format_;
  ChatTemplate chat_template_;
  std::optional<int32_t> bos_;  // set when documents start with BOS
  int32_t eos_ = 0, pad_ = 0;
};

}  // namespace tessera::data
