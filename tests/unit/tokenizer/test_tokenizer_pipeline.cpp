// Normalizers, pre-tokenizers and added tokens, seen through the pieces encode() produces.
#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

using json = nlohmann::json;

const Strings kDashWords = {"the", "-", "final", "countdown", "the-", "final-", "-final", "--", "-countdown"};

Strings split_dash(const std::string& behavior, bool invert) {
  auto j = word_tokenizer(kDashWords);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
  return pieces(load(j), "the-final--countdown");
}

TEST(TokenizerPreTokenizer, SplitBehaviors) {
  EXPECT_EQ(split_dash("Removed", false), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(split_dash("Isolated", false), (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split_dash("MergedWithPrevious", false), (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split_dash("MergedWithNext", false), (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split_dash("Contiguous", false), (Strings{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split_dash("Removed", true), (Strings{"-", "-", "-"}));
}

TEST(TokenizerPreTokenizer, SplitRegexWithUnicodeClasses) {
  auto j = word_tokenizer({"abc", "Ünï", "123", "日本"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+|\\p{N}+"}}}, {"behavior", "Removed"}, {"invert", true}};
  EXPECT_EQ(pieces(load(j), "abc Ünï,123 日本"), (Strings{"abc", "Ünï", "123", "日本"}));
}

TEST(TokenizerPreTokenizer, Digits) {
  auto j = word_tokenizer({"abc", "1", "2", "3", "123", "d", "4", "٣"});
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_EQ(pieces(load(j), "abc123d4٣"), (Strings{"abc", "1", "2", "3", "d", "4", "٣"}));
  j["pre_tokenizer"]["individual_digits"] = false;
  EXPECT_EQ(pieces(load(j), "abc123d4"), (Strings{"abc", "123", "d", "4"}));
}

TEST(TokenizerPreTokenizer, ByteLevelWithGpt2Regex) {
  auto j = word_tokenizer({"Hello", "ĠHello", "Ġworld", "'s", "Ġ123", "ĠĠ", "Ġ!", "Ċ"});
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(pieces(load(j), "Hello world's 123"), (Strings{"Hello", "Ġworld", "'s", "Ġ123"}));
  // A space run keeps its last space for the next word; a newline maps to Ċ.
  EXPECT_EQ(pieces(load(j), "Hello   world\n"), (Strings{"Hello", "ĠĠ", "Ġworld", "Ċ"}));
  j["pre_tokenizer"]["add_prefix_space"] = true;
  EXPECT_EQ(pieces(load(j), "Hello !"), (Strings{"ĠHello", "Ġ!"}));
}

TEST(TokenizerPreTokenizer, MetaspaceSplit) {
  auto j = word_tokenizer({"▁hello", "▁world", "▁", "hello"});
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(pieces(load(j), "hello world"), (Strings{"▁hello", "▁world"}));
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(pieces(load(j), "hello  world"), (Strings{"hello", "▁", "▁world"}));
}

TEST(TokenizerNormalizer, UnicodeFormsAndCase) {
  auto j = word_tokenizer({"é", "fi", "hello", "ａ"});
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(pieces(load(j), "e\xCC\x81"), (Strings{"é"}));
  j["normalizer"] = {{"type", "NFKC"}};
  EXPECT_EQ(pieces(load(j), "ﬁ"), (Strings{"fi"}));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}, {{"type", "Lowercase"}}}}};
  EXPECT_EQ(pieces(load(j), "HeLLo"), (Strings{"hello"}));
  // Like Rust's char::to_lowercase, İ becomes two characters.
  auto k = word_tokenizer({"i\xCC\x87"});
  k["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(pieces(load(k), "İ"), (Strings{"i\xCC\x87"}));
}

TEST(TokenizerNormalizer, ReplaceRegexPrependStrip) {
  auto j = word_tokenizer({"a_b", "_a_b", "a b"});
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
                       {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}}}}};
  EXPECT_EQ(pieces(load(j), " \t a \n b  "), (Strings{"a_b"}));
  j["normalizer"]["normalizers"].push_back({{"type", "Prepend"}, {"prepend", "_"}});
  EXPECT_EQ(pieces(load(j), "a  b"), (Strings{"_a_b"}));
}

json added(const std::string& content, bool special, bool lstrip = false, bool rstrip = false,
           bool single_word = false, bool normalized = false) {
  // The written id is past the vocabulary (the ids written are not used; see IdsAssignedLikeTokenizers).
  return {{"id", 1000},        {"content", content}, {"special", special},      {"lstrip", lstrip},
          {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", normalized}};
}

TEST(TokenizerAddedTokens, LongestMatchFirst) {
  auto j = word_tokenizer({"x", "y"});
  j["added_tokens"] = {added("<a>", true), added("<a><b>", true)};
  EXPECT_EQ(pieces(load(j), "x<a><b>y<a>"), (Strings{"x", "<a><b>", "y", "<a>"}));
}

TEST(TokenizerAddedTokens, StripFlags) {
  auto j = word_tokenizer({"a", "a ", " b", "b"});
  j["added_tokens"] = {added("<m>", true, true, false)};
  EXPECT_EQ(pieces(load(j), "a <m> b"), (Strings{"a", "<m>", " b"}));
  j["added_tokens"] = {added("<m>", true, true, true)};
  EXPECT_EQ(pieces(load(j), "a <m> b"), (Strings{"a", "<m>", "b"}));
  j["added_tokens"] = {added("<m>", true, false, true)};
  EXPECT_EQ(pieces(load(j), "a <m> b"), (Strings{"a ", "<m>", "b"}));
}

TEST(TokenizerAddedTokens, SingleWord) {
  auto j = word_tokenizer({" cab "});
  j["added_tokens"] = {added("ab", false, false, false, true)};
  EXPECT_EQ(pieces(load(j), "ab cab ab"), (Strings{"ab", " cab ", "ab"}));
  // Word characters are Unicode \w: a combining mark is one, a vulgar fraction is not.
  j = word_tokenizer({"\xCC\x88", "½"});
  j["added_tokens"] = {added("ab", false, false, false, true)};
  EXPECT_EQ(pieces(load(j), "ab\xCC\x88"), (Strings{"<unk>", "\xCC\x88"}));
  EXPECT_EQ(pieces(load(j), "½ab"), (Strings{"½", "ab"}));
}

TEST(TokenizerAddedTokens, NormalizedTokensMatchAfterNormalization) {
  auto j = word_tokenizer({" there", "HI"});
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = {added("HI", false, false, false, false, true)};
  auto t = load(j);
  // The model knows "HI" too, so the added token takes its id.
  EXPECT_EQ(t.encode("HI there", false), (Ids{2, 1}));
  EXPECT_EQ(pieces(t, "Hi there"), (Strings{"HI", " there"}));
}

TEST(TokenizerAddedTokens, IdsAssignedLikeTokenizers) {
  // The ids written in added_tokens are not used: tokens take their vocabulary id or the next
  // one after the model's vocabulary, in order (what the Python library does).
  auto j = word_tokenizer({"a", "b"});  // <unk>=0 a=1 b=2
  j["added_tokens"] = {added("<x>", true), added("b", false), added("<y>", true)};
  auto t = load(j);
  EXPECT_EQ(t.token_to_id("<x>"), 3);
  EXPECT_EQ(t.token_to_id("b"), 2);
  EXPECT_EQ(t.token_to_id("<y>"), 4);
  EXPECT_EQ(t.vocab_size(), 5);
  EXPECT_EQ(t.decode({1, 3, 2, 4}, true), "a b");  // no decoder: joined with spaces
}

}  // namespace
}  // namespace tessera::tok::testing
