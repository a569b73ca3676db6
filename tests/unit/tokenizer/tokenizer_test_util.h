// Helpers shared by the tokenizer tests: data paths and small tokenizer.json builders.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::tok::testing {

inline std::string data_path(const std::string& rel) { return std::string(TESSERA_TEST_DATA) + "/" + rel; }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Folder of a real tokenizer fetched by scripts/fetch-tokenizers.sh ("" when missing).
inline std::string fetched_tokenizer(const std::string& name) {
  std::string dir = data_path("tokenizers/" + name);
  return std::filesystem::exists(dir + "/tokenizer.json") ? dir : "";
}

#define TOK_REQUIRE_FETCHED(var, name)                                                             \
  const std::string var = ::tessera::tok::testing::fetched_tokenizer(name);                       \
  if (var.empty()) FAIL() << "tests/data/tokenizers/" << name                                      \
                          << "/tokenizer.json is missing: run scripts/fetch-tokenizers.sh"

// A tokenizer whose model knows exactly `words` (ignore_merges: a pre-token that is a word is one
// token; anything else is one fused <unk>), so encode() shows how the text was cut.
inline nlohmann::json word_tokenizer(const std::vector<std::string>& words) {
  nlohmann::json vocab = {{"<unk>", 0}};
  for (const auto& w : words)
    if (!vocab.contains(w)) vocab[w] = static_cast<int>(vocab.size());
  return {{"version", "1.0"},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"ignore_merges", true},
            {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
}

inline Tokenizer load(const nlohmann::json& j) { return Tokenizer::from_json(j.dump(), "", "test.json"); }

// The token strings encode() produces.
inline std::vector<std::string> pieces(const Tokenizer& t, const std::string& text) {
  std::vector<std::string> out;
  for (int32_t id : t.encode(text, false)) out.push_back(t.id_to_token(id).value_or("?"));
  return out;
}

using Strings = std::vector<std::string>;
using Ids = std::vector<int32_t>;

}  // namespace tessera::tok::testing
