// A tokenizer.json whose ids contradict themselves is refused by name (issue 13, item 14):
// two vocabulary entries with one id, or an added token written with an id the vocabulary gives
// to another token. Both were silently accepted (the later entry won).
#include "error_text.h"
#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

std::string load_error(const nlohmann::json& j) {
  return testing_util::error_of([&] { load(j); });
}

TEST(TokenizerIds, DuplicateVocabIdsAreErrors) {
  nlohmann::json j = word_tokenizer({"hello", "world"});
  j["model"]["vocab"]["world"] = 1;  // "hello" has id 1 too
  EXPECT_EQ(load_error(j), "test.json: model.vocab: id 1 is given to both 'hello' and 'world'");
  EXPECT_EQ(load_error(word_tokenizer({"hello", "world"})), testing_util::kNoError);
}

TEST(TokenizerIds, AddedTokenOnAnotherTokensIdIsAnError) {
  nlohmann::json j = word_tokenizer({"hello", "world"});
  j["added_tokens"] = {{{"id", 2}, {"content", "<|end|>"}, {"special", true}}};
  EXPECT_EQ(load_error(j), "test.json: added_tokens[0]: added token '<|end|>' has id 2, which the vocabulary gives to "
                         "'world'");
  // Written with the id the vocabulary gives it, or past the vocabulary: fine.
  j["added_tokens"] = {{{"id", 2}, {"content", "world"}, {"special", true}}};
  EXPECT_EQ(load_error(j), testing_util::kNoError);
  j["added_tokens"] = {{{"id", 3}, {"content", "<|end|>"}, {"special", true}}};
  EXPECT_EQ(load_error(j), testing_util::kNoError);
  EXPECT_EQ(load(j).token_to_id("<|end|>"), 3);
}

}  // namespace
}  // namespace tessera::tok::testing
