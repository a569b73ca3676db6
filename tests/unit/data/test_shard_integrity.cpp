// Prepared shards (.tsd) are checked whole when opened (issue 13, item 16): a flipped bit in the
// body, positions of 1e9, a label outside the vocabulary or a wrong `targets` field each refuse
// the shard by name; version 1 shards (no checksum) are refused with what to do.
#include <gtest/gtest.h>

#include <fstream>

#include "io/data/shard.h"
#include "unit/data/data_test_util.h"

namespace tessera::data {
namespace {

using namespace testing;

constexpr int64_t kSeq = 4, kVocab = 10;

// Two records of kSeq tokens: ids, labels, positions each.
std::vector<int32_t> records() {
  return {1, 2, 3, 4, /*labels*/ 2, 3, 4, kIgnoreLabel, /*positions*/ 0, 1, 2, 3,
          5, 6, 7, 8, /*labels*/ 6, kIgnoreLabel, 8, 9, /*positions*/ 0, 1, 0, 1};
}

std::string write_shard(const std::filesystem::path& path, const std::vector<int32_t>& recs, int64_t targets) {
  ShardWriter writer(path.string(), {kSeq, 0, kVocab, 1234, 0});
  writer.append(recs);
  writer.commit(targets);
  return path.string();
}

// Overwrites the int32 at byte `offset` of `path`.
void poke(const std::string& path, size_t offset, int32_t value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(reinterpret_cast<const char*>(&value), sizeof value);
}

TEST(ShardIntegrity, AGoodShardOpens) {
  const auto dir = scratch_dir();
  const std::string path = write_shard(dir / "train.tsd", records(), 6);
  const Shard shard = Shard::open(path);
  EXPECT_EQ(shard.header().count, 2);
  EXPECT_EQ(shard.header().targets, 6);
  EXPECT_EQ(shard.record(1)[0], 5);
}

TEST(ShardIntegrity, ADamagedBodyFailsTheChecksum) {
  const auto dir = scratch_dir();
  const std::string path = write_shard(dir / "train.tsd", records(), 6);
  poke(path, 64 + 4 * 2, 7);  // token 2 of sequence 0: a valid id, but not the one written
  EXPECT_EQ(error_of([&] { Shard::open(path); }),
            path + ": corrupt shard: the checksum does not match its contents (damaged on disk or in transfer; run "
                   "tessera prepare-data again)");
  const std::string header = write_shard(dir / "h.tsd", records(), 6);
  poke(header, 48, 5);  // the targets field
  EXPECT_NE(error_of([&] { Shard::open(header); }).find("checksum does not match"), std::string::npos);
}

TEST(ShardIntegrity, RecordsThePackerCannotWriteAreRefused) {
  const auto dir = scratch_dir();
  std::vector<int32_t> r = records();
  r[2 * kSeq + 1] = 1000000000;  // a position of 1e9
  EXPECT_EQ(error_of([&] { Shard::open(write_shard(dir / "p.tsd", r, 6)); }),
            (dir / "p.tsd").string() + ": corrupt shard: sequence 0 token 1 has position 1000000000 (positions "
                                       "count up from 0 in each document)");
  r = records();
  r[3 * kSeq + kSeq] = 10;  // a label of sequence 1 outside the vocabulary
  EXPECT_EQ(error_of([&] { Shard::open(write_shard(dir / "l.tsd", r, 6)); }),
            (dir / "l.tsd").string() + ": corrupt shard: sequence 1 token 0 has label 10, outside the vocabulary of 10");
  r = records();
  r[0] = -1;
  EXPECT_EQ(error_of([&] { Shard::open(write_shard(dir / "i.tsd", r, 6)); }),
            (dir / "i.tsd").string() + ": corrupt shard: sequence 0 token 0 has id -1, outside the vocabulary of 10");
  EXPECT_EQ(error_of([&] { Shard::open(write_shard(dir / "t.tsd", records(), 7)); }),
            (dir / "t.tsd").string() + ": corrupt shard: the header counts 7 targets, the sequences hold 6");
}

TEST(ShardIntegrity, VersionOneShardsAskToPrepareAgain) {
  const auto dir = scratch_dir();
  const std::string path = write_shard(dir / "train.tsd", records(), 6);
  poke(path, 8, 1);
  EXPECT_EQ(error_of([&] { Shard::open(path); }),
            path + ": a version 1 shard (no checksum, written by an older Tessera): run tessera prepare-data again");
}

}  // namespace
}  // namespace tessera::data
