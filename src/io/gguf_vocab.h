// A tokenizer as llama.cpp's GGUF vocabulary: tokenizer.ggml.model "gpt2" (byte-level BPE) with
// its tokens, token types, merges, special ids and the name of the pre-tokenizer llama.cpp must
// use (`tokenizer.ggml.pre`). llama.cpp does not read the pre-tokenizer from the file; it knows a
// fixed set of them by name, so the tokenizer.json's pre-tokenizer is recognised here and an
// unknown one is an error rather than a file that tokenizes differently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::gguf {

// llama_token_type values (tokenizer.ggml.token_type).
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Vocab {
  std::string pre;                  // tokenizer.ggml.pre
  std::vector<std::string> tokens;  // one per id, as many as the model's embedding rows
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;  // "left right", in rank order
  std::optional<int32_t> bos, eos, pad;
  bool add_bos = false, add_eos = false;
  std::string chat_template;
};

// From a tokenizer.json (a file or its folder, with tokenizer_config.json beside it) for a model
// of `vocab_size` embedding rows: ids the tokenizer does not use become "[PAD<id>]" tokens of
// type Unused (as llama.cpp's converter writes them); a tokenizer id at or past vocab_size is an
// error. bos/eos fall back to `default_bos` / `default_eos` (config.json's) when the tokenizer
// names none; add_bos follows add_bos_token, else whether encoding adds BOS (as the trainer does).
Vocab vocab_from_tokenizer(const std::string& path, int64_t vocab_size, std::optional<int32_t> default_bos,
                           std::optional<int32_t> default_eos);

// Tessera's built-in byte tokenizer as a gpt2 vocabulary that encodes identically: token i < 256 is
// byte i in the GPT-2 byte alphabet, no merges, then the <bos>/<eos>/<pad> control tokens.
Vocab byte_vocab(int64_t vocab_size);

// Appends the tokenizer.* keys.
void add_vocab_metadata(const Vocab& vocab, Metadata& metadata);

// The tokenizer.* keys of a file, checked: a gpt2 model with one type per token, ids in range and
// a pre-tokenizer this file recognises.
Vocab vocab_from_gguf(const File& file);

// A tokenizer that encodes as llama.cpp does with `vocab` when it parses special tokens: the
// byte tokenizer for byte_vocab()'s layout, otherwise byte-level BPE with the named
// pre-tokenizer, control and user-defined tokens matched in the text, and no BOS added by
// encode() (add_bos_token() says whether to prepend it). `name` is used in error messages.
tok::Tokenizer tokenizer_from_vocab(const Vocab& vocab, const std::string& name);

}  // namespace tessera::gguf
