// Streaming a generation's text a token at a time: the pieces, concatenated, are the whole
// decode (for real byte-level BPE tokenizers and SentencePiece-style ones, on real text with
// CJK and emoji and on random ids), no piece splits a character, and stop strings that span
// tokens cut the text where the whole text's first one starts.
#include <gtest/gtest.h>

#include <random>

#include "../tokenizer/tokenizer_test_util.h"
#include "engine/inference/detokenizer.h"
#include "engine/inference/text_stream.h"
#include "io/tokenizer/utf8.h"

using namespace tessera;
using namespace tessera::inference;
using tessera::tok::Tokenizer;
using tessera::tok::testing::data_path;
using tessera::tok::testing::read_text;

namespace {

// The tokenizers the tests stream with: two SentencePiece-style fixtures and the fetched real
// ones (byte-level BPE).
const std::vector<std::pair<std::string, Tokenizer>>& tokenizers() {
  static const std::vector<std::pair<std::string, Tokenizer>> loaded = [] {
    std::vector<std::pair<std::string, Tokenizer>> out;
    out.emplace_back("tiny_spm", Tokenizer::from_file(data_path("tokenizer/tiny_spm")));
    out.emplace_back("tiny_metaspace", Tokenizer::from_file(data_path("tokenizer/tiny_metaspace/tokenizer.json")));
    out.emplace_back("bytes", Tokenizer::bytes());
    for (const char* name : {"llama3", "qwen3", "deepseek_v3"}) {
      const std::string dir = tok::testing::fetched_tokenizer(name);
      EXPECT_FALSE(dir.empty()) << "tests/data/tokenizers/" << name << " is missing: run scripts/fetch-tokenizers.sh";
      if (!dir.empty()) out.emplace_back(name, Tokenizer::from_file(dir));
    }
    return out;
  }();
  return loaded;
}

// Streams `ids` through a Detokenizer; every piece must be whole UTF-8 characters.
std::string streamed(const Tokenizer& t, const std::vector<int32_t>& ids) {
  Detokenizer d(t);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string piece = d.push(ids[i]);
    EXPECT_EQ(tok::find_invalid_utf8(piece), std::string::npos) << "piece at token " << i;
    out += piece;
  }
  return out + d.flush();
}

std::vector<int32_t> random_ids(std::mt19937& rng, int32_t vocab, size_t n) {
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (auto& x : ids) x = id(rng);
  return ids;
}

// Streams through a TextStream until it stops; returns the text sent and whether it stopped.
std::pair<std::string, bool> stream_with_stops(const Tokenizer& t, const std::vector<int32_t>& ids,
                                               const std::vector<std::string>& stop) {
  TextStream s(t, stop);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const TextUpdate u = s.push(ids[i], i + 1 == ids.size());
    out += u.text;
    if (u.stopped) return {out, true};
  }
  return {out, false};
}

const std::string kEmoji = "Hi 🙂👍🏽 家族👨‍👩‍👧 — 你好，世界！ café ½ \xF0\x9F\x8C\x88 end";

}  // namespace

TEST(Detokenizer, RealTextStreamsToTheWholeDecode) {
  const std::string text = read_text(data_path("tokenizer/multilingual.txt")) + kEmoji;
  for (const auto& [name, t] : tokenizers()) {
    SCOPED_TRACE(name);
    const std::vector<int32_t> ids = t.encode(text, true);
    ASSERT_GT(ids.size(), 100u);
    EXPECT_EQ(streamed(t, ids), t.decode(ids, true));
  }
}

// Random ids: special tokens among them, bytes that never make a character, byte-fallback runs
// that are not UTF-8 (one U+FFFD per byte, decided only at the run's end).
TEST(Detokenizer, RandomIdsStreamToTheWholeDecode) {
  std::mt19937 rng(7);
  for (const auto& [name, t] : tokenizers()) {
    SCOPED_TRACE(name);
    for (int trial = 0; trial < 40; ++trial) {
      const std::vector<int32_t> ids = random_ids(rng, t.vocab_size(), 1 + trial * 3);
      ASSERT_EQ(streamed(t, ids), t.decode(ids, true)) << "trial " << trial;
    }
  }
}

// SentencePiece-style byte fallback (tiny_spm: <0xNN> is id 3 + NN): a character's bytes in
// separate tokens come out whole once the run ends, and a run that is not UTF-8 comes out as one
// U+FFFD per byte, even when its first bytes made a character.
TEST(Detokenizer, ByteFallbackRunsComeOutWhole) {
  const Tokenizer t = Tokenizer::from_file(data_path("tokenizer/tiny_spm"));
  auto byte = [](int b) { return 3 + b; };
  const int32_t hello = 271, world = 276;
  Detokenizer d(t);
  EXPECT_EQ(d.push(hello), "hello");
  EXPECT_EQ(d.push(byte(0xE4)), "");
  EXPECT_EQ(d.push(byte(0xB8)), "");
  EXPECT_EQ(d.push(byte(0xAD)), "");  // 中 is whole, but the run may go on
  EXPECT_EQ(d.push(world), "中 world");
  EXPECT_EQ(d.push(byte(0xE4)), "");
  EXPECT_EQ(d.push(byte(0xB8)), "");
  EXPECT_EQ(d.push(byte(0xAD)), "");
  EXPECT_EQ(d.push(byte(0xFF)), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

// Byte-level BPE: a 4-byte character split over byte tokens waits for its last byte; a
// Metaspace-style first token loses its leading space only at the start of the generation.
TEST(Detokenizer, SplitCharactersWaitForTheirLastByte) {
  const Tokenizer t = Tokenizer::bytes();
  Detokenizer d(t);
  EXPECT_EQ(d.push('a'), "a");
  EXPECT_EQ(d.push(0xF0), "");
  EXPECT_EQ(d.push(0x9F), "");
  EXPECT_EQ(d.push(0x99), "");
  EXPECT_EQ(d.push(0x82), "🙂");
  EXPECT_EQ(d.push(0xF0), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");  // the end: an incomplete character as the whole decode has it

  const Tokenizer spm = Tokenizer::from_file(data_path("tokenizer/tiny_spm"));
  Detokenizer s(spm);
  EXPECT_EQ(s.push(276), "world");  // ▁world first: the decoder drops its space
  EXPECT_EQ(s.push(276), " world");
  EXPECT_EQ(s.push(1), "");  // <s>, skipped
  EXPECT_EQ(s.push(271), " hello");
}

TEST(Detokenizer, IdsOutsideTheVocabularyAreErrors) {
  const Tokenizer t = Tokenizer::bytes();
  Detokenizer d(t);
  EXPECT_THROW(d.push(t.vocab_size()), Error);
}

TEST(TextStream, HoldsBackStopPrefixesAcrossTokens) {
  const Tokenizer t = Tokenizer::bytes();
  auto ids = [](const std::string& s) {
    std::vector<int32_t> out;
    for (unsigned char c : s) out.push_back(c);
    return out;
  };
  TextStream s(t, {"world"});
  std::string sent;
  for (int32_t id : ids("Hello wo")) sent += s.push(id, false).text;
  EXPECT_EQ(sent, "Hello ");  // "wo" may begin "world"
  TextUpdate u = s.push('r', false);
  EXPECT_EQ(u.text, "");
  u = s.push('x', false);  // "worx" is not "world": it goes
  EXPECT_EQ(u.text, "worx");
  EXPECT_FALSE(u.stopped);

  EXPECT_EQ(stream_with_stops(t, ids("Hello world!"), {"world"}), std::make_pair(std::string("Hello "), true));
  EXPECT_EQ(stream_with_stops(t, ids("Hello wo"), {"world"}), std::make_pair(std::string("Hello wo"), false));
  EXPECT_EQ(stream_with_stops(t, ids("a##b"), {"##", "#b"}), std::make_pair(std::string("a"), true));
  // A stop string inside a multi-byte character's bytes is found once the character is whole.
  EXPECT_EQ(stream_with_stops(t, ids("x 你好 y"), {"好"}), std::make_pair(std::string("x 你"), true));
}

// Stop strings drawn from the streamed text itself (so they span token boundaries and hold CJK
// and emoji): the text sent is the whole decode up to the stop string's first occurrence.
TEST(TextStream, StopStringsAcrossTokensCutWhereTheWholeTextDoes) {
  const std::string text = read_text(data_path("tokenizer/multilingual.txt")) + kEmoji;
  std::mt19937 rng(3);
  for (const auto& [name, t] : tokenizers()) {
    SCOPED_TRACE(name);
    const std::vector<int32_t> ids = t.encode(text, false);
    const std::string whole = t.decode(ids, true);
    for (int trial = 0; trial < 30; ++trial) {
      // A substring of 1-12 bytes at a character boundary, from anywhere in the text.
      size_t at = std::uniform_int_distribution<size_t>(0, whole.size() - 13)(rng);
      while (at > 0 && (static_cast<unsigned char>(whole[at]) & 0xC0) == 0x80) --at;
      size_t end = at + std::uniform_int_distribution<size_t>(1, 12)(rng);
      while (end < whole.size() && (static_cast<unsigned char>(whole[end]) & 0xC0) == 0x80) ++end;
      const std::string stop = whole.substr(at, end - at);
      const auto [sent, stopped] = stream_with_stops(t, ids, {stop});
      EXPECT_TRUE(stopped) << "stop '" << stop << "'";
      EXPECT_EQ(sent, whole.substr(0, whole.find(stop))) << "stop '" << stop << "'";
    }
    // A stop string that never occurs: everything goes, and nothing stops.
    EXPECT_EQ(stream_with_stops(t, ids, {"\x01never\x02"}), std::make_pair(whole, false));
  }
}
