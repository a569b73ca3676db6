// Bad and hostile data files: one-line errors naming file and line, skip_bad_lines, no crashes.
#include <gtest/gtest.h>

#include <random>

#include "io/data/data_loader.h"
#include "io/data/pack_file.h"
#include "unit/data/data_test_util.h"

namespace tessera::data {
namespace {

using namespace testing;

struct Outcome {
  std::string error;
  PackStats stats;
};

Outcome pack(const std::string& path, const std::string& format = "auto", bool skip = false) {
  DataOptions data = data_section(path, 16, format);
  data.skip_bad_lines = skip;
  data.chat_template = "chatml";
  Outcome out;
  out.error = error_of([&] {
    out.stats = pack_file(path, data, tok::Tokenizer::bytes(), [](std::vector<int32_t>&&) {});
  });
  return out;
}

// The error for a file whose line 2 is `bad` (line 1 is a good record of `format`).
std::string error_on_line_2(const std::filesystem::path& dir, const std::string& bad, const std::string& format) {
  const std::string good = format == "completion" ? R"({"prompt": "p", "completion": "c"})"
                           : format == "chat"     ? R"({"messages": [{"role": "user", "content": "u"}]})"
                                                  : R"({"text": "t"})";
  return pack(write_file(dir / "train.jsonl", good + "\n" + bad + "\n"), format).error;
}

TEST(BadData, ErrorsNameFileLineAndProblem) {
  auto dir = scratch_dir();
  const std::string at = (dir / "train.jsonl").string() + ":2: ";
  EXPECT_EQ(error_on_line_2(dir, R"({"text": "abc)", "text"),
            at + "invalid JSON: column 14: syntax error while parsing value - invalid string: missing closing "
                 "quote, near '{\"text\": \"abc'");
  EXPECT_EQ(error_on_line_2(dir, R"({"prompt": "p"})", "completion"), at + "missing field \"completion\"");
  EXPECT_EQ(error_on_line_2(dir, R"({"text": 5})", "text"), at + "\"text\" must be a string, got number");
  EXPECT_EQ(error_on_line_2(dir, R"({"text": null})", "auto"), at + "\"text\" must be a string, got null");
  EXPECT_EQ(error_on_line_2(dir, "{\"text\": \"ok\", \"other\": 1, \"text2\": \"\xff\"}", "text"),
            at + "invalid UTF-8 in \"text\"");
  EXPECT_EQ(error_on_line_2(dir, "{\"prompt\": \"a\", \"completion\": \"b\xc3\"}", "completion"),
            at + "invalid UTF-8 in \"completion\"");
  EXPECT_EQ(error_on_line_2(dir, "[1, 2]", "text"), at + "expected a JSON object, got array");
  EXPECT_EQ(error_on_line_2(dir, R"({"messages": [{"role": "tool", "content": "x"}]})", "chat"),
            at + "\"messages[0].role\" is \"tool\"; expected system, user or assistant");
  EXPECT_EQ(error_on_line_2(dir, R"({"messages": [{"role": "user"}]})", "chat"),
            at + "missing field \"messages[0].content\"");
  EXPECT_EQ(error_on_line_2(dir, R"({"messages": {}})", "chat"), at + "\"messages\" must be an array, got object");
  EXPECT_EQ(error_on_line_2(dir, R"({"messages": []})", "chat"), at + "\"messages\" is empty");
}

TEST(BadData, AutoNeedsAKnownField) {
  auto dir = scratch_dir();
  const std::string path = write_file(dir / "x.jsonl", "{\"body\": \"x\"}\n");
  EXPECT_EQ(pack(path).error, path + ":1: none of the fields \"text\", \"prompt\"/\"completion\" or \"messages\" "
                                     "(set data.format?)");
}

TEST(BadData, ChatWithoutTemplateAsksForOne) {
  auto dir = scratch_dir();
  const std::string path = write_file(dir / "c.jsonl", R"({"messages": [{"role": "user", "content": "u"}]})" "\n");
  EXPECT_EQ(error_of([&] { DataLoader(data_section(path, 16), tok::Tokenizer::bytes(), 0); }),
            path + ": chat data needs a chat template and the tokenizer's is missing: set data.chat_template to "
                   "chatml, qwen3, llama3 or deepseek");
}

TEST(BadData, SkipBadLinesCountsThem) {
  auto dir = scratch_dir();
  const std::string path = write_file(dir / "t.jsonl", "garbage\n{\"text\": \"a\"}\n{\"text\": 1}\n\n{\"text\": \"b\"}\n{\n");
  EXPECT_EQ(pack(path).error.rfind(path + ":1: invalid JSON: ", 0), 0u);
  Outcome o = pack(path, "auto", true);
  EXPECT_EQ(o.error, kNoError);
  EXPECT_EQ(o.stats.documents, 2);
  EXPECT_EQ(o.stats.bad_lines, 3);
  EXPECT_EQ(o.stats.first_bad.rfind(path + ":1: invalid JSON", 0), 0u);
  // The loader stops before training when nothing is left.
  const std::string none = write_file(dir / "none.jsonl", "x\ny\n");
  DataOptions data = data_section(none, 16);
  data.skip_bad_lines = true;
  EXPECT_EQ(error_of([&] { DataLoader(data, tok::Tokenizer::bytes(), 0); }), none + ": no training examples");
}

TEST(BadData, HostileFilesNeverCrash) {
  auto dir = scratch_dir();
  std::mt19937 rng(1);
  std::string garbage(1 << 16, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  const std::string huge = "{\"text\": \"" + std::string(8 << 20, 'x') + "\"}\n";
  const std::vector<std::pair<std::string, std::string>> files = {
      {"garbage.jsonl", garbage},
      {"empty.jsonl", ""},
      {"blank.jsonl", "\n \n\t\n"},
      {"truncated.jsonl", "{\"text\": \"a\"}\n{\"te"},
      {"nested.jsonl", std::string(100000, '[') + "\n"},
      {"nul.jsonl", std::string("{\"text\": \"a\0b\"}\n", 16)},
      {"huge.jsonl", huge},
      {"garbage.txt", garbage},
  };
  for (const auto& [name, content] : files) {
    const std::string path = write_file(dir / name, content);
    for (bool skip : {false, true}) {
      Outcome o = pack(path, "auto", skip);
      if (o.error != kNoError) {
        EXPECT_EQ(o.error.rfind(path + ":", 0), 0u) << o.error;
        EXPECT_EQ(o.error.find('\n'), std::string::npos) << o.error;
      }
    }
  }
  EXPECT_EQ(pack((dir / "huge.jsonl").string()).stats.documents, 1);
  EXPECT_EQ(pack((dir / "empty.jsonl").string()).stats.documents, 0);
  EXPECT_EQ(pack((dir / "garbage.txt").string()).error.rfind((dir / "garbage.txt").string() + ":1: invalid UTF-8", 0),
            0u);
}

}  // namespace
}  // namespace tessera::data
