// Broken or unsupported tokenizer.json files must give one tessera::Error, never a crash or
// another exception type.
#include <random>

#include "error_text.h"
#include "tokenizer_test_util.h"

namespace tessera::tok::testing {
namespace {

using json = nlohmann::json;

std::string load_error(const std::string& text) {
  return testing_util::error_of([&] { Tokenizer::from_json(text, "", "bad.json"); });
}

std::string load_error(const json& j) { return load_error(j.dump()); }

json spm_json() { return json::parse(read_text(data_path("tokenizer/tiny_spm/tokenizer.json"))); }

TEST(TokenizerHostile, NotJson) {
  EXPECT_NE(load_error(std::string("{\"model\": {")).find("bad.json: invalid JSON"), std::string::npos);
  EXPECT_NE(load_error(std::string("")).find("invalid JSON"), std::string::npos);
  EXPECT_NE(load_error(std::string("[1, 2]")).find("expected a JSON object"), std::string::npos);
  EXPECT_NE(load_error(std::string("null")).find("expected a JSON object"), std::string::npos);
}

TEST(TokenizerHostile, UnsupportedComponentsAreNamed) {
  auto j = spm_json();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
  EXPECT_EQ(load_error(j), "bad.json: unsupported pre_tokenizer type 'Whitespace' at pre_tokenizer.pretokenizers[0]");
  j = spm_json();
  j["model"]["type"] = "WordPiece";
  EXPECT_EQ(load_error(j), "bad.json: unsupported model type 'WordPiece' at model.type");
  j = spm_json();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  EXPECT_EQ(load_error(j), "bad.json: unsupported normalizer type 'BertNormalizer' at normalizer");
  j = spm_json();
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_EQ(load_error(j), "bad.json: unsupported decoder type 'WordPiece' at decoder");
  j = spm_json();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  EXPECT_EQ(load_error(j), "bad.json: unsupported post_processor type 'RobertaProcessing' at post_processor");
  j = spm_json();
  j["model"]["dropout"] = 0.1;
  EXPECT_NE(load_error(j).find("dropout is not supported"), std::string::npos);
  j = spm_json();
  j["truncation"] = {{"max_length", 512}};
  EXPECT_NE(load_error(j).find("truncation is not supported"), std::string::npos);
}

TEST(TokenizerHostile, WrongTypesAndMissingKeys) {
  auto j = spm_json();
  j["model"]["vocab"] = json::array();
  EXPECT_EQ(load_error(j), "bad.json: model.vocab: expected an object of token -> id");
  j = spm_json();
  j["model"]["vocab"]["h"] = "seven";
  EXPECT_EQ(load_error(j), "bad.json: model.vocab[\"h\"]: expected an integer");
  j = spm_json();
  j["model"]["vocab"]["h"] = -4;
  EXPECT_EQ(load_error(j), "bad.json: model.vocab[\"h\"]: token id -4 out of range [0, 16777216)");
  j["model"]["vocab"]["h"] = 2000000000;
  EXPECT_EQ(load_error(j), "bad.json: model.vocab[\"h\"]: token id 2000000000 out of range [0, 16777216)");
  j = spm_json();
  j["model"].erase("merges");
  EXPECT_EQ(load_error(j), "bad.json: model: missing key 'merges'");
  j = spm_json();
  j["model"]["merges"][3] = "nosuch token";
  EXPECT_EQ(load_error(j), "bad.json: model.merges[3]: merge token 'nosuch' is not in the vocabulary");
  j = spm_json();
  j["model"]["merges"][0] = json::array({"l", "l"});
  EXPECT_NE(load_error(j).find("merges mix"), std::string::npos);
  j = spm_json();
  j["added_tokens"] = {{"content", "x"}};
  EXPECT_EQ(load_error(j), "bad.json: added_tokens: expected an array");
  j = spm_json();
  j["added_tokens"][1]["content"] = 5;
  EXPECT_EQ(load_error(j), "bad.json: added_tokens[1].content: expected a string");
  j = spm_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(load_error(j).find("invalid regex '(unclosed'"), std::string::npos);
  j = spm_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
  EXPECT_EQ(load_error(j), "bad.json: unsupported split behavior 'Sideways' at pre_tokenizer.behavior");
  j = spm_json();
  j["model"]["unk_token"] = "<nope>";
  EXPECT_EQ(load_error(j), "bad.json: model.unk_token: unk token '<nope>' is not in the vocabulary");
}

// Every value replaced, one at a time, by values of other types, and the text cut short at many
// places: loading either succeeds or throws tessera::Error.
TEST(TokenizerHostile, MutatedFilesNeverCrash) {
  json base = spm_json();
  base["model"]["vocab"] = {{"<unk>", 0}, {"<s>", 1}, {"a", 2}, {"b", 3}, {"ab", 4}};
  base["model"]["merges"] = {"a b"};
  base["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Isolated"}, {"invert", false}},
                             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}},
                             {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}},
                             {{"type", "Digits"}, {"individual_digits", true}}}}};
  const json replacements[] = {nullptr, 0, -1, 1e30, 2147483647, "x", "", true, json::array(), json::object(), json::array({1, "a"})};
  std::vector<json::json_pointer> pointers;
  const json flat = base.flatten();
  for (const auto& [path, value] : flat.items()) {
    json::json_pointer p(path);
    for (; !p.empty(); p = p.parent_pointer()) pointers.push_back(p);
  }
  int loaded = 0, rejected = 0;
  for (const auto& p : pointers) {
    for (const json& r : replacements) {
      json j = base;
      j[p] = r;
      try {
        auto t = Tokenizer::from_json(j.dump(), "", "m.json");
        t.encode("ab a 12 ▁x", true);
        ++loaded;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  std::string text = base.dump();
  for (size_t cut = 0; cut < text.size(); cut += 7) EXPECT_NE(load_error(text.substr(0, cut)), testing_util::kNoError);
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
}

TEST(TokenizerHostile, BadInputsToEncodeAndDecode) {
  auto t = Tokenizer::from_file(data_path("tokenizer/tiny_spm"));
  EXPECT_THROW(t.encode("ok \xC3(", false), Error);
  try {
    t.decode({1, 5000}, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 5000 at position 1 is out of range"), std::string::npos);
  }
  EXPECT_THROW(t.decode({-1}, false), Error);
  EXPECT_THROW(Tokenizer::from_file(data_path("tokenizer/no_such_dir")), Error);
}

}  // namespace
}  // namespace tessera::tok::testing
