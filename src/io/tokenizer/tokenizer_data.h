// Everything a loaded Tokenizer holds; read-only after loading, shared between copies.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/tokenizer/added_tokens.h"
#include "io/tokenizer/bpe.h"
#include "io/tokenizer/decoder.h"
#include "io/tokenizer/normalizer.h"
#include "io/tokenizer/post_processor.h"
#include "io/tokenizer/pre_tokenizer.h"

namespace tessera::tok {

struct TokenizerData {
  std::string name;  // file path, for error messages
  bool byte_tokenizer = false;

  std::unique_ptr<Bpe> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  std::vector<AddedToken> added;                // as listed in tokenizer.json
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index into added
  Vocab added_by_content;                       // content -> id
  AddedTokenMatcher raw_matcher;                // tokens with normalized=false, on the raw text
  AddedTokenMatcher normalized_matcher;         // tokens with normalized=true, after normalizing
  int32_t vocab_size = 0;

  // From tokenizer_config.json.
  std::optional<std::string> bos_token, eos_token, pad_token;
  std::optional<bool> add_bos, add_eos;
  std::string chat_template;
};

// Fills the tokenizer_config.json fields of data from its JSON text.
void load_tokenizer_config(TokenizerData& data, const std::string& config_json, const std::string& name);

}  // namespace tessera::tok
