// Packing rules: positions restart per document and per row, segments follow documents, labels
// never cross a document boundary, loss masks survive packing.
#include <gtest/gtest.h>

#include "io/data/packer.h"
#include "unit/data/data_test_util.h"

namespace tessera::data {
namespace {

using namespace testing;
constexpr int32_t X = kIgnoreLabel;

Document doc(std::vector<int32_t> ids, std::vector<uint8_t> targets) { return {std::move(ids), std::move(targets)}; }

std::vector<Sequence> rows(Packer& p, int64_t seq_len) {
  p.finish();
  std::vector<int32_t> r = p.take_rows();
  std::vector<Sequence> out;
  for (size_t at = 0; at < r.size(); at += 3 * seq_len) out.push_back(unpack_record(&r[at], seq_len));
  return out;
}

TEST(Packing, DocumentsSplitAcrossRowsAndMasksCarry) {
  Packer p(4, 99);
  p.add(doc({1, 2, 3}, {0, 1, 1}));
  p.add(doc({10, 11, 12, 13, 14, 15}, {0, 0, 1, 0, 1, 1}));  // masked 11 and 13
  p.add(doc({20, 21}, {0, 1}));
  auto s = rows(p, 4);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].ids, (std::vector<int32_t>{1, 2, 3, 10}));
  EXPECT_EQ(s[0].labels, (std::vector<int32_t>{2, 3, X, X}));  // 3 ends doc 1; 10 predicts masked 11
  EXPECT_EQ(s[0].positions, (std::vector<int32_t>{0, 1, 2, 0}));
  EXPECT_EQ(s[0].segment_ids, (std::vector<int32_t>{0, 0, 0, 1}));
  EXPECT_EQ(s[1].ids, (std::vector<int32_t>{11, 12, 13, 14}));
  EXPECT_EQ(s[1].labels, (std::vector<int32_t>{12, X, 14, 15}));  // 14 predicts 15 in the next row
  EXPECT_EQ(s[1].positions, (std::vector<int32_t>{0, 1, 2, 3}));  // a continued document restarts at 0
  EXPECT_EQ(s[2].ids, (std::vector<int32_t>{15, 20, 21, 99}));
  EXPECT_EQ(s[2].labels, (std::vector<int32_t>{X, 21, X, X}));
  EXPECT_EQ(s[2].positions, (std::vector<int32_t>{0, 0, 1, 0}));
  EXPECT_EQ(s[2].segment_ids, (std::vector<int32_t>{0, 1, 1, 2}));
  EXPECT_EQ(p.targets(), 2 + 0 + 3 + 1);
}

TEST(Packing, LabelsNeverCrossDocuments) {
  Packer p(16, 0);
  std::vector<int32_t> doc_of_token;
  for (int32_t d = 0; d < 9; ++d) {
    std::vector<int32_t> ids;
    for (int32_t k = 0; k <= d; ++k) ids.push_back(100 * d + k);
    p.add(doc(ids, std::vector<uint8_t>(ids.size(), 1)));
  }
  for (const Sequence& s : rows(p, 16)) {
    for (size_t i = 0; i < s.ids.size(); ++i) {
      if (s.labels[i] == X) continue;
      EXPECT_EQ(s.labels[i] / 100, s.ids[i] / 100);  // same document
      EXPECT_EQ(s.labels[i], s.ids[i] + 1);           // its next token
      if (i + 1 < s.ids.size()) {
        EXPECT_EQ(s.segment_ids[i + 1], s.segment_ids[i]);
      }
    }
    for (size_t i = 1; i < s.ids.size(); ++i)
      EXPECT_EQ(s.positions[i] == 0, s.segment_ids[i] != s.segment_ids[i - 1]);
  }
}

TEST(Packing, ExactFitHasNoPaddingRow) {
  Packer p(3, 0);
  p.add(doc({1, 2, 3}, {0, 1, 1}));
  EXPECT_EQ(rows(p, 3).size(), 1u);
  EXPECT_NE(error_of([] { Packer(1, 0); }).find("data.seq_len must be at least 2"), std::string::npos);
}

}  // namespace
}  // namespace tessera::data
