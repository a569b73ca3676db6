// Sentencepiece-style BPE (Llama 2 / Mistral): byte fallback, unk fusing, Prepend+Replace
// normalizer or Metaspace pre-tokenizer, TemplateProcessing. Expected ids worked out by hand
// and checked against the Python `tokenizers` 0.23 library.
#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

Tokenizer tiny_spm() { return Tokenizer::from_file(data_path("tokenizer/tiny_spm")); }
Tokenizer tiny_metaspace() { return Tokenizer::from_file(data_path("tokenizer/tiny_metaspace/tokenizer.json")); }

// Ids: <unk>=0 <s>=1 </s>=2, <0xNN>=3+NN, ▁=259 h=260 e=261 l=262 o=263 ... ll=267 ▁h=268
// ell=269 ▁hell=270 ▁hello=271 ... ▁world=276.
TEST(TokenizerSpm, MergesByRank) {
  auto t = tiny_spm();
  EXPECT_EQ(t.encode("hello world", false), (Ids{271, 276}));
  EXPECT_EQ(t.encode("hello world", true), (Ids{1, 271, 276}));
  EXPECT_EQ(t.encode("", true), (Ids{1}));
  EXPECT_EQ(t.encode("", false), (Ids{}));
  EXPECT_EQ(t.encode(" hello", true), (Ids{1, 259, 271}));
}

TEST(TokenizerSpm, ByteFallback) {
  auto t = tiny_spm();
  // "▁hi▁é": i -> <0x69>; é -> <0xC3><0xA9>; x y z -> their bytes.
  EXPECT_EQ(t.encode("hi é", true), (Ids{1, 268, 108, 259, 198, 172}));
  EXPECT_EQ(t.encode("hxyz", true), (Ids{1, 268, 123, 124, 125}));
  EXPECT_EQ(t.decode({1, 268, 108, 259, 198, 172}, true), "hi é");
}

TEST(TokenizerSpm, SpecialTokensSplitTextAndEachPartIsNormalized) {
  auto t = tiny_spm();
  EXPECT_EQ(t.encode("<s>hello", true), (Ids{1, 1, 271}));
  Ids ids = t.encode("a <s> b", true);
  EXPECT_EQ(ids, (Ids{1, 259, 100, 259, 1, 259, 259, 101}));
  EXPECT_EQ(t.decode(ids, true), "a   b");
  EXPECT_EQ(t.decode(ids, false), "<s> a <s>  b");
  EXPECT_EQ(t.decode({1, 1, 271}, false), "<s><s> hello");
}

TEST(TokenizerSpm, PairTemplate) {
  EXPECT_EQ(tiny_spm().encode_pair("hello", "world", true), (Ids{1, 271, 1, 276}));
  EXPECT_EQ(tiny_spm().encode_pair("hello", "world", false), (Ids{271, 276}));
}

TEST(TokenizerSpm, DecoderChain) {
  auto t = tiny_spm();
  EXPECT_EQ(t.decode({259, 259, 268, 259}, false), "  h ");
  // A lone <0xC3> is not UTF-8: one U+FFFD per byte.
  EXPECT_EQ(t.decode({271, 198, 259}, false), "hello\xEF\xBF\xBD ");
  EXPECT_EQ(t.decode({271, 198, 198, 276}, false), "hello\xEF\xBF\xBD\xEF\xBF\xBD world");
}

TEST(TokenizerSpm, ConfigFile) {
  auto t = tiny_spm();
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.pad_id(), std::nullopt);
  EXPECT_EQ(t.add_bos_token(), true);
  EXPECT_EQ(t.add_eos_token(), false);
  EXPECT_EQ(t.chat_template(), "{{ messages }}");
  EXPECT_EQ(t.vocab_size(), 277);
  EXPECT_EQ(t.token_to_id("▁hello"), 271);
  EXPECT_EQ(t.token_to_id("<0x0A>"), 13);
  EXPECT_EQ(t.token_to_id("nope"), std::nullopt);
  EXPECT_EQ(tiny_metaspace().bos_id(), std::nullopt);  // no tokenizer_config.json there
}

TEST(TokenizerMetaspace, PrependSchemeFirst) {
  auto t = tiny_metaspace();
  EXPECT_EQ(t.encode("hello world", true), (Ids{1, 271, 276}));
  EXPECT_EQ(t.encode("hi é", true), (Ids{1, 268, 108, 259, 198, 172}));
  // Text after a special token is not at the start: no ▁ is prepended.
  EXPECT_EQ(t.encode("<s>hello", true), (Ids{1, 1, 260, 269, 263}));
  Ids ids = t.encode("a <s> b", true);
  EXPECT_EQ(ids, (Ids{1, 259, 100, 259, 1, 259, 101}));
  EXPECT_EQ(t.decode(ids, true), "a  b");
  EXPECT_EQ(t.decode(ids, false), "<s> a <s> b");
  EXPECT_EQ(t.encode(" hello", true), (Ids{1, 271}));
  EXPECT_EQ(t.decode({259, 259, 268, 259}, false), "  h ");
}

nlohmann::json spm_json() { return nlohmann::json::parse(read_text(data_path("tokenizer/tiny_spm/tokenizer.json"))); }

TEST(TokenizerSpm, UnknownWithoutByteFallback) {
  auto j = spm_json();
  j["model"]["byte_fallback"] = false;
  auto fused = load(j);
  EXPECT_EQ(fused.encode("hi é", true), (Ids{1, 268, 0, 259, 0}));
  EXPECT_EQ(fused.encode("hxyz", true), (Ids{1, 268, 0}));
  EXPECT_EQ(fused.decode({1, 268, 0, 259, 0}, true), "h ");
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(load(j).encode("hxyz", true), (Ids{1, 268, 0, 0, 0}));
}

TEST(TokenizerSpm, MergesInArrayForm) {
  auto j = spm_json();
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& m : j["model"]["merges"]) {
    std::string s = m;
    merges.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  j["model"]["merges"] = merges;
  EXPECT_EQ(load(j).encode("hello world", true), (Ids{1, 271, 276}));
}

}  // namespace
}  // namespace tessera::tok::testing
