// The built-in byte tokenizer: ids 0..255 are bytes, BOS=256, EOS=257, PAD=258.
#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

TEST(TokenizerBytes, EncodeDecode) {
  auto t = Tokenizer::bytes();
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(t.bos_id(), 256);
  EXPECT_EQ(t.eos_id(), 257);
  EXPECT_EQ(t.pad_id(), 258);
  EXPECT_EQ(t.encode("hé", false), (Ids{104, 0xC3, 0xA9}));
  EXPECT_EQ(t.encode("hé", true), (Ids{256, 104, 0xC3, 0xA9}));
  EXPECT_EQ(t.encode("", true), (Ids{256}));
  // Special-token strings in the text are plain bytes.
  EXPECT_EQ(t.encode("<bos>", false).size(), 5u);
  EXPECT_EQ(t.decode({256, 104, 0xC3, 0xA9, 257}, true), "hé");
  EXPECT_EQ(t.decode({256, 104, 257, 258}, false), "<bos>h<eos><pad>");
  EXPECT_EQ(t.token_to_id("<eos>"), 257);
  EXPECT_THROW(t.decode({259}, false), Error);
}

TEST(TokenizerBytes, InvalidUtf8DecodesLikeFromUtf8Lossy) {
  auto t = Tokenizer::bytes();
  const std::string fffd = "\xEF\xBF\xBD";
  // A truncated 3-byte sequence is one U+FFFD; a stray continuation byte is one each.
  EXPECT_EQ(t.decode({0xE4, 0xBD, 'a'}, false), fffd + "a");
  EXPECT_EQ(t.decode({0x80, 0x80}, false), fffd + fffd);
  // Surrogates (ED A0..) and overlongs (C0 80) are invalid byte by byte.
  EXPECT_EQ(t.decode({0xED, 0xA0, 0x80}, false), fffd + fffd + fffd);
  EXPECT_EQ(t.decode({0xC0, 0x80}, false), fffd + fffd);
  EXPECT_EQ(t.decode({0xF0, 0x9F, 0x98, 0x80}, false), "😀");
  // Any bytes encode, valid UTF-8 or not.
  EXPECT_EQ(t.encode(std::string("\xFF\x00", 2), false), (Ids{255, 0}));
}

}  // namespace
}  // namespace tessera::tok::testing
