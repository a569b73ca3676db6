// Exact Hugging Face tokenizer.json tokenizer (BPE models: byte-level and sentencepiece-style).
// encode() follows the `tokenizers` library: added tokens, normalizer, pre-tokenizer, BPE,
// post-processor, all as described in tokenizer.json. Concurrent encode()/decode() calls on one
// Tokenizer are safe; copies share the loaded data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::tok {

struct TokenizerData;

class Tokenizer {
 public:
  // path is a tokenizer.json file or a folder holding one; a tokenizer_config.json beside it
  // supplies bos/eos/pad tokens, add_bos/add_eos and the chat template.
  static Tokenizer from_file(const std::string& path);
  // Same, from the JSON text itself; config_json may be empty. name is used in error messages.
  static Tokenizer from_json(const std::string& tokenizer_json, const std::string& config_json,
                             const std::string& name);
  // Built-in byte tokenizer: ids 0..255 are UTF-8 bytes, then BOS=256, EOS=257, PAD=258.
  static Tokenizer bytes();

  // text must be valid UTF-8 (except for bytes()). add_special_tokens applies the post-processor.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::vector<int32_t> encode_pair(std::string_view a, std::string_view b,
                                   bool add_special_tokens) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;  // largest id + 1, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;

  // From tokenizer_config.json (nullopt when absent or not in the vocabulary).
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  // add_bos_token / add_eos_token of tokenizer_config.json. encode() does not apply them: it adds
  // what tokenizer.json's post-processor says, like `tokenizers` does.
  std::optional<bool> add_bos_token() const;
  std::optional<bool> add_eos_token() const;
  std::string chat_template() const;  // raw template, "" if none

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerData> data) : data_(std::move(data)) {}
  std::shared_ptr<const TokenizerData> data_;
};

}  // namespace tessera::tok
