#include "io/data/fingerprint.h"

#include <string_view>

namespace tessera::data {

namespace {

struct Fnv1a {
  uint64_t h = 14695981039346656037ull;
  void bytes(std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;  // ends the field, so "ab","c" differs from "a","bc"
  }
  void number(int64_t v) { bytes(std::to_string(v)); }
};

}  // namespace

uint64_t tokenizer_fingerprint(const tok::Tokenizer& tokenizer) {
  Fnv1a f;
  const int32_t vocab = tokenizer.vocab_size();
  f.number(vocab);
  for (int32_t id = 0; id < vocab; ++id) f.bytes(tokenizer.id_to_token(id).value_or(""));
  f.number(tokenizer.bos_id().value_or(-1));
  f.number(tokenizer.eos_id().value_or(-1));
  f.number(tokenizer.pad_id().value_or(-1));
  f.number(tokenizer.add_bos_token() ? *tokenizer.add_bos_token() : -1);
  f.bytes(tokenizer.chat_template());
  for (int32_t id : tokenizer.encode("Hello, world! 12345 ünïcödé 你好  tabs\tand\nlines", true)) f.number(id);
  return f.h;
}

}  // namespace tessera::data
