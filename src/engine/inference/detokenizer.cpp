#include "engine/inference/detokenizer.h"

#include "io/tokenizer/decoder.h"

namespace tessera::inference {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

bool is_byte_piece(const tok::Tokenizer& tokenizer, int32_t id) {
  const std::optional<std::string> piece = tokenizer.id_to_token(id);
  unsigned char byte;
  return piece && tok::parse_byte_token(*piece, byte);
}

}  // namespace

std::string Detokenizer::push(int32_t token) {
  window_.push_back(token);
  if (is_byte_piece(tokenizer_, token)) return {};  // its run may go on, and the run decodes as a whole
  std::string text = tokenizer_.decode(window_, true);
  // Nothing new (skipped special tokens), an incomplete character, or a decoder whose text of
  // more tokens does not extend that of fewer: wait (flush() hands out what is left).
  if (text.size() <= context_text_.size() || text.ends_with(kReplacement) || !text.starts_with(context_text_))
    return {};
  std::string piece = text.substr(context_text_.size());
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(context_));
  context_ = window_.size();
  context_text_ = tokenizer_.decode(window_, true);
  return piece;
}

std::string Detokenizer::flush() {
  const std::string text = tokenizer_.decode(window_, true);
  window_.clear();
  context_ = 0;
  std::string piece = text.starts_with(context_text_) ? text.substr(context_text_.size()) : std::string();
  context_text_.clear();
  return piece;
}

}  // namespace tessera::inference
