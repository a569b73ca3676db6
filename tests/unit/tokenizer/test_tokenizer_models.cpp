// The real Llama 3, Qwen3 and DeepSeek V3 tokenizers (fetched by scripts/fetch-tokenizers.sh):
// known ids, round trips and concurrent encoding.
#include <thread>

#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

TEST(TokenizerModels, Llama3KnownIds) {
  TOK_REQUIRE_FETCHED(dir, "llama3");
  auto t = Tokenizer::from_file(dir);
  EXPECT_EQ(t.encode("Hello world", false), (Ids{9906, 1917}));
  // This tokenizer.json's post-processor is ByteLevel alone, so `tokenizers` adds no BOS.
  EXPECT_EQ(t.encode("Hello world", true), (Ids{9906, 1917}));
  EXPECT_EQ(t.encode("<|begin_of_text|>Hello world", true), (Ids{128000, 9906, 1917}));
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128001);
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_FALSE(t.chat_template().empty());
  EXPECT_EQ(t.decode({128000, 9906, 1917}, false), "<|begin_of_text|>Hello world");
  EXPECT_EQ(t.decode({128000, 9906, 1917}, true), "Hello world");
}

TEST(TokenizerModels, Qwen3KnownIds) {
  TOK_REQUIRE_FETCHED(dir, "qwen3");
  auto t = Tokenizer::from_file(dir);
  EXPECT_EQ(t.encode("Hello world", true), (Ids{9707, 1879}));
  EXPECT_EQ(t.encode("<|im_start|>user<|im_end|><|endoftext|>", false), (Ids{151644, 872, 151645, 151643}));
  EXPECT_EQ(t.bos_id(), std::nullopt);
  EXPECT_EQ(t.eos_id(), 151645);
  EXPECT_EQ(t.pad_id(), 151643);
  // Qwen splits digits one by one.
  Ids digits = t.encode("12345", false);
  EXPECT_EQ(digits.size(), 5u);
  // NFC: a decomposed é encodes like the precomposed one.
  EXPECT_EQ(t.encode("cafe\xCC\x81", false), t.encode("caf\xC3\xA9", false));
}

TEST(TokenizerModels, DeepSeekV3Specials) {
  TOK_REQUIRE_FETCHED(dir, "deepseek_v3");
  auto t = Tokenizer::from_file(dir);
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.add_bos_token(), true);
  Ids ids = t.encode("<｜begin▁of▁sentence｜>Hi", false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 0);
  // Digits go in groups of at most three.
  EXPECT_EQ(t.encode("1234567", false).size(), 3u);
  EXPECT_EQ(t.decode(ids, false), "<｜begin▁of▁sentence｜>Hi");
  EXPECT_EQ(t.decode(ids, true), "Hi");
}

TEST(TokenizerModels, RoundTripMultilingual) {
  const std::string text = read_text(data_path("tokenizer/multilingual.txt"));
  ASSERT_GT(text.size(), 1000u);
  for (const char* name : {"llama3", "deepseek_v3"}) {
    TOK_REQUIRE_FETCHED(dir, name);
    auto t = Tokenizer::from_file(dir);
    Ids ids = t.encode(text, false);
    EXPECT_GT(ids.size(), 300u) << name;
    EXPECT_EQ(t.decode(ids, false), text) << name;
  }
}

TEST(TokenizerModels, ConcurrentEncodeMatchesSerial) {
  TOK_REQUIRE_FETCHED(dir, "qwen3");
  auto t = Tokenizer::from_file(dir);
  const std::string text = read_text(data_path("tokenizer/multilingual.txt"));
  const Ids expected = t.encode(text, true);
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int r = 0; r < 20; ++r) bad[k] += t.encode(text, true) != expected;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace tessera::tok::testing
