// A GGUF file holding only a vocabulary's tokenizer metadata (and the architecture a reader asks
// for first): a seed for the GGUF tokenizer's fuzz driver and the input of its regression tests.
#pragma once

#include <filesystem>
#include <string>

#include "io/gguf_vocab.h"
#include "io/gguf_writer.h"

namespace tessera::testing_util {

inline void write_vocab_gguf(const std::string& path, const gguf::Vocab& vocab) {
  std::filesystem::remove(path);
  gguf::Metadata m;
  m.emplace_back("general.architecture", gguf::Value::string("llama"));
  gguf::add_vocab_metadata(vocab, m);
  gguf::Writer writer(path, m, {});
  writer.finish();
}

}  // namespace tessera::testing_util
