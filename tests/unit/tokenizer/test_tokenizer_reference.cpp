// Exactness against the Python `tokenizers` library: tests/data/tokenizer/reference_<name>.json
// holds its output (written by tests/tools/tokenizer_reference.py); a missing file fails.
#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

class TokenizerReference : public ::testing::TestWithParam<std::string> {};

std::string tokenizer_dir(const std::string& name) {
  std::string committed = data_path("tokenizer/" + name);
  if (std::filesystem::exists(committed + "/tokenizer.json")) return committed;
  return fetched_tokenizer(name);
}

// "first difference at index i: got x, want y" for two id lists.
std::string first_difference(const Ids& got, const Ids& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto at = [](const Ids& v, size_t k) { return k < v.size() ? std::to_string(v[k]) : std::string("end"); };
  return "first difference at index " + std::to_string(i) + ": got " + at(got, i) + ", want " + at(want, i);
}

TEST_P(TokenizerReference, MatchesPythonTokenizers) {
  const std::string name = GetParam();
  const std::string ref_path = data_path("tokenizer/reference_" + name + ".json");
  if (!std::filesystem::exists(ref_path))
    FAIL() << ref_path << " is missing: run `python3 tests/tools/tokenizer_reference.py --tokenizers "
           << "tests/data/tokenizers --text-dir tests/data/tokenizer --out tests/data/tokenizer` "
           << "where the Python tokenizers library is installed";
  const std::string dir = tokenizer_dir(name);
  if (dir.empty()) FAIL() << "tokenizer " << name << " is missing: run scripts/fetch-tokenizers.sh";
  auto t = Tokenizer::from_file(dir);
  auto ref = nlohmann::json::parse(read_text(ref_path));
  ASSERT_GT(ref.at("cases").size(), 5u);
  for (const auto& c : ref.at("cases")) {
    const std::string case_name = c.at("name");
    const std::string text = c.at("text");
    const Ids want = c.at("ids").get<Ids>(), want_special = c.at("ids_with_special").get<Ids>();
    Ids got = t.encode(text, false), got_special = t.encode(text, true);
    EXPECT_EQ(got, want) << name << " case " << case_name << ": " << first_difference(got, want);
    EXPECT_EQ(got_special, want_special) << name << " case " << case_name << " with special tokens: "
                                         << first_difference(got_special, want_special);
    EXPECT_EQ(t.decode(want_special, false), c.at("decoded").get<std::string>()) << name << " case " << case_name;
    EXPECT_EQ(t.decode(want_special, true), c.at("decoded_skip_special").get<std::string>())
        << name << " case " << case_name << " skipping special tokens";
  }
}

INSTANTIATE_TEST_SUITE_P(All, TokenizerReference,
                         ::testing::Values("qwen3", "llama3", "deepseek_v3", "tiny_spm", "tiny_metaspace"));

}  // namespace
}  // namespace tessera::tok::testing
