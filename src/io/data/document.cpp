#include "io/data/document.h"

#include "core/error.h"

namespace tessera::data {

DocumentEncoder::DocumentEncoder(const tok::Tokenizer& tokenizer, Format format, ChatTemplate chat_template)
    : tokenizer_(tokenizer), format_(format), chat_template_(chat_template) {
  std::optional<int32_t> eos = tokenizer.eos_id();
  TS_CHECK(eos.has_value(), "the tokenizer has no EOS token (eos_token in tokenizer_config.json): "
                            "documents cannot be separated");
  eos_ = *eos;
  pad_ = tokenizer.pad_id().value_or(eos_);
  std::optional<int32_t> bos = tokenizer.bos_id();
  if (bos) {
    std::optional<bool> add = tokenizer.add_bos_token();
    const bool wants = add ? *add : tokenizer.encode("a", true).front() == *bos;
    if (wants) bos_ = bos;
  }
}

void DocumentEncoder::append(Document& doc, std::string_view text, bool trained) const {
  std::vector<int32_t> ids = tokenizer_.encode(text, false);
  doc.ids.insert(doc.ids.end(), ids.begin(), ids.end());
  doc.targets.insert(doc.targets.end(), ids.size(), trained ? 1 : 0);
}

Document DocumentEncoder::encode(const Example& example) const {
  Document doc;
  if (format_ == Format::chat) {
    for (const ChatPiece& piece : render_chat(chat_template_, example.messages))
      append(doc, piece.text, piece.trained);
    return doc;
  }
  if (bos_) {
    doc.ids.push_back(*bos_);
    doc.targets.push_back(0);
  }
  if (format_ == Format::text) {
    append(doc, example.text, true);
  } else {
    append(doc, example.prompt, false);
    append(doc, example.completion, true);
  }
  doc.ids.push_back(eos_);
  doc.targets.push_back(1);
  doc.targets[0] = 0;  // nothing comes before the first token
  return doc;
}

std::vector<int32_t> DocumentEncoder::prompt(std::string_view text) const {
  Document doc;
  if (bos_) doc.ids.push_back(*bos_);
  append(doc, text, false);
  return doc.ids;
}

std::vector<int32_t> DocumentEncoder::chat_prompt(const std::vector<Message>& messages) const {
  Document doc;
  for (const ChatPiece& piece : render_chat(chat_template_, messages)) append(doc, piece.text, false);
  append(doc, generation_prompt(chat_template_), false);
  return doc.ids;
}

}  // namespace tessera::data
