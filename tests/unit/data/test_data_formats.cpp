// Each JSONL format through the byte tokenizer (BOS 256, EOS 257, PAD 258): exact ids and labels.
#include <gtest/gtest.h>

#include "io/data/document.h"
#include "io/data/jsonl.h"
#include "io/data/pack_file.h"
#include "io/data/packer.h"
#include "unit/data/data_test_util.h"

namespace tessera::data {
namespace {

using namespace testing;
constexpr int32_t X = kIgnoreLabel;

std::vector<Sequence> pack(const std::string& path, int64_t seq_len, const std::string& format = "auto",
                           PackStats* stats = nullptr) {
  std::vector<int32_t> records;
  PackStats s = pack_file(path, data_section(path, seq_len, format), tok::Tokenizer::bytes(),
                          [&](std::vector<int32_t>&& rows) { records.insert(records.end(), rows.begin(), rows.end()); });
  if (stats) *stats = s;
  std::vector<Sequence> out;
  for (size_t at = 0; at < records.size(); at += 3 * seq_len) out.push_back(unpack_record(&records[at], seq_len));
  return out;
}

TEST(DataFormats, TextDocumentsAreBosTextEos) {
  auto dir = scratch_dir();
  auto path = write_file(dir / "t.jsonl", "{\"text\": \"ab\"}\n\n{\"text\": \"c\"}\n");
  PackStats stats;
  auto seqs = pack(path, 8, "auto", &stats);
  EXPECT_EQ(stats.format, Format::text);
  EXPECT_EQ(stats.documents, 2);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0].ids, (std::vector<int32_t>{256, 'a', 'b', 257, 256, 'c', 257, 258}));
  EXPECT_EQ(seqs[0].labels, (std::vector<int32_t>{'a', 'b', 257, X, 'c', 257, X, X}));
  EXPECT_EQ(seqs[0].positions, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2, 0}));
  EXPECT_EQ(seqs[0].segment_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 2}));
  EXPECT_EQ(stats.targets, 5);
}

TEST(DataFormats, CompletionTrainsOnlyTheCompletionAndEos) {
  auto dir = scratch_dir();
  auto path = write_file(dir / "c.jsonl", "{\"prompt\": \"ab\", \"completion\": \"cd\"}\n");
  auto seqs = pack(path, 7);
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0].ids, (std::vector<int32_t>{256, 'a', 'b', 'c', 'd', 257, 258}));
  EXPECT_EQ(seqs[0].labels, (std::vector<int32_t>{X, X, 'c', 'd', 257, X, X}));
}

TEST(DataFormats, ChatTrainsOnlyAssistantContentAndEndOfTurn) {
  auto dir = scratch_dir();
  auto path = write_file(dir / "m.jsonl",
                         R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},)"
                         R"( {"role": "assistant", "content": "yo"}]})"
                         "\n");
  DataOptions data = data_section(path, 128);
  data.chat_template = "chatml";
  std::vector<int32_t> records;
  PackStats stats = pack_file(path, data, tok::Tokenizer::bytes(), [&](std::vector<int32_t>&& r) {
    records.insert(records.end(), r.begin(), r.end());
  });
  EXPECT_EQ(stats.format, Format::chat);
  Sequence s = unpack_record(records.data(), 128);
  const std::string rendered = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                               "<|im_start|>assistant\nyo<|im_end|>\n";
  std::vector<int32_t> expected_ids = bytes_of(rendered);  // no BOS/EOS: the template has its own
  expected_ids.resize(128, 258);
  EXPECT_EQ(s.ids, expected_ids);
  // The labels that are not -100 spell exactly the assistant's content and <|im_end|>, each
  // predicted by the token before it.
  std::string trained;
  const size_t first = rendered.find("yo") - 1;
  for (size_t i = 0; i < s.labels.size(); ++i) {
    if (s.labels[i] == X) continue;
    EXPECT_EQ(s.labels[i], s.ids[i + 1]);
    if (trained.empty()) {
      EXPECT_EQ(i, first);
    }
    trained += static_cast<char>(s.labels[i]);
  }
  EXPECT_EQ(trained, "yo<|im_end|>");
}

TEST(DataFormats, FormatNamedInConfigWins) {
  auto dir = scratch_dir();
  // Has both keys; format text reads "text" only.
  auto path = write_file(dir / "t.jsonl", "{\"text\": \"x\", \"prompt\": \"p\", \"completion\": \"c\"}\n");
  PackStats stats;
  auto seqs = pack(path, 4, "text", &stats);
  EXPECT_EQ(stats.format, Format::text);
  EXPECT_EQ(seqs[0].ids, (std::vector<int32_t>{256, 'x', 257, 258}));
  pack(path, 4, "auto", &stats);
  EXPECT_EQ(stats.format, Format::completion);
}

TEST(DataFormats, PlainTextFileIsOneDocument) {
  auto dir = scratch_dir();
  auto path = write_file(dir / "doc.txt", "ab\n\ncd");
  auto seqs = pack(path, 4);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(seqs[0].ids, (std::vector<int32_t>{256, 'a', 'b', '\n'}));
  EXPECT_EQ(seqs[1].ids, (std::vector<int32_t>{'\n', 'c', 'd', 257}));
  // The document continues in the second row: the last token of row 0 predicts its next token.
  EXPECT_EQ(seqs[0].labels, (std::vector<int32_t>{'a', 'b', '\n', '\n'}));
  EXPECT_EQ(seqs[1].labels, (std::vector<int32_t>{'c', 'd', 257, X}));
  EXPECT_EQ(seqs[1].positions, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_NE(error_of([&] { pack(path, 4, "chat"); }).find("doc.txt: data.format chat needs a .jsonl file"),
            std::string::npos);
}

TEST(DataFormats, SampleDatasetsDetectTheirFormat) {
  for (auto [file, format] : {std::pair{"text.jsonl", Format::text}, std::pair{"completion.jsonl", Format::completion},
                              std::pair{"chat.jsonl", Format::chat}}) {
    const std::string path = data_path(std::string("jsonl/") + file);
    DataOptions data = data_section(path, 64);
    data.chat_template = "llama3";
    PackStats stats = pack_file(path, data, tok::Tokenizer::bytes(), [](std::vector<int32_t>&&) {});
    EXPECT_EQ(stats.format, format) << file;
    EXPECT_GE(stats.documents, 6) << file;
  }
}

}  // namespace
}  // namespace tessera::data
