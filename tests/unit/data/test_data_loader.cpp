// DataLoader: global batches independent of how they are sliced, seeded epochs, checkpoint state,
// prepare-data shards giving the same sequences as the JSONL itself, and the batch tensors.
#include <gtest/gtest.h>

#include <set>

#include "io/data/data_loader.h"
#include "model/token_batch.h"
#include "io/data/fingerprint.h"
#include "io/data/pack_file.h"
#include "io/data/shard.h"
#include "unit/data/data_test_util.h"

namespace tessera::data {
namespace {

using namespace testing;

// 40 documents of 6 bytes: with BOS and EOS each fills one row of 8, so sequences are easy to tell apart.
std::string forty_documents(const std::filesystem::path& dir) {
  std::string jsonl;
  for (int k = 100; k < 140; ++k) jsonl += "{\"text\": \"doc" + std::to_string(k) + "\"}\n";
  return write_file(dir / "train.jsonl", jsonl);
}

bool same(const Sequence& a, const Sequence& b) {
  return a.ids == b.ids && a.labels == b.labels && a.positions == b.positions && a.segment_ids == b.segment_ids;
}

bool same(const std::vector<Sequence>& a, const std::vector<Sequence>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

TEST(DataLoader, GlobalBatchDoesNotDependOnSlicing) {
  auto dir = scratch_dir();
  const auto tokenizer = tok::Tokenizer::bytes();
  DataLoader loader(data_section(forty_documents(dir), 8), tokenizer, 7);
  ASSERT_EQ(loader.num_sequences(), 40);
  for (int64_t step : {0, 1, 5, 6, 7, 20}) {  // 6 batches of 6 per epoch: steps 6, 7 and 20 are later epochs
    const auto whole = loader.global_batch(step, 6, 0, 6);
    std::vector<Sequence> sliced;
    for (int64_t b = 0; b < 6; b += 2)
      for (Sequence& s : loader.global_batch(step, 6, b, b + 2)) sliced.push_back(std::move(s));
    EXPECT_TRUE(same(whole, sliced)) << "step " << step;
    // Another loader (another rank) with the same seed agrees.
    DataLoader other(data_section(dir / "train.jsonl", 8), tokenizer, 7);
    EXPECT_TRUE(same(other.global_batch(step, 6, 3, 5), loader.global_batch(step, 6, 3, 5)));
  }
}

TEST(DataLoader, EpochsAreShuffledPermutations) {
  auto dir = scratch_dir();
  const auto tokenizer = tok::Tokenizer::bytes();
  DataLoader a(data_section(forty_documents(dir), 8), tokenizer, 1);
  DataLoader b(data_section(dir / "train.jsonl", 8), tokenizer, 2);
  auto epoch_ids = [](const DataLoader& l, int64_t epoch) {
    std::vector<std::vector<int32_t>> seen;
    for (int64_t step = epoch * 4; step < epoch * 4 + 4; ++step)  // 40 / 10 = 4 batches per epoch
      for (const Sequence& s : l.global_batch(step, 10, 0, 10)) seen.push_back(s.ids);
    return seen;
  };
  const auto a0 = epoch_ids(a, 0), a1 = epoch_ids(a, 1), b0 = epoch_ids(b, 0);
  EXPECT_EQ(std::set(a0.begin(), a0.end()).size(), 40u);  // every sequence once per epoch
  EXPECT_EQ(std::set(a0.begin(), a0.end()), std::set(a1.begin(), a1.end()));
  EXPECT_NE(a0, a1);  // reshuffled
  EXPECT_NE(a0, b0);  // another seed, another order
}

TEST(DataLoader, StateAfterCountsEpochsAndPosition) {
  auto dir = scratch_dir();
  DataLoader loader(data_section(forty_documents(dir), 8), tok::Tokenizer::bytes(), 3);
  LoaderState s = loader.state_after(9, 6);  // 6 batches of 6 per epoch
  EXPECT_EQ(s.seed, 3u);
  EXPECT_EQ(s.epoch, 1);
  EXPECT_EQ(s.position, 18);
  EXPECT_EQ(error_of([&] { loader.global_batch(0, 41, 0, 1); }),
            (dir / "train.jsonl").string() + ": 40 sequences of 8 tokens, fewer than one global batch of 41");
}

// A resumed job goes on from the checkpoint's place in the sample stream whatever its global batch:
// 3 batches of 6, then batches of 4 see exactly the sequences batches 3, 4, 5 of 6 would have.
TEST(DataLoader, ResumesTheStreamWhateverTheGlobalBatch) {
  auto dir = scratch_dir();
  DataLoader loader(data_section(forty_documents(dir), 8), tok::Tokenizer::bytes(), 3);
  std::vector<Sequence> uninterrupted, resumed;
  for (int64_t step = 3; step < 6; ++step)
    for (Sequence& s : loader.global_batch(step, 6, 0, 6)) uninterrupted.push_back(std::move(s));
  const LoaderState saved = loader.state_after(3, 6);
  EXPECT_EQ(saved.epoch, 0);
  EXPECT_EQ(saved.position, 18);
  for (int64_t k = 0; k < 5; ++k)  // sequences 18..37 of epoch 0: the 4-batches fit its tail too
    for (Sequence& s : loader.global_batch(saved, k, 4, 0, 4)) resumed.push_back(std::move(s));
  resumed.resize(uninterrupted.size());
  EXPECT_TRUE(same(resumed, uninterrupted));
  const LoaderState later = loader.state_after(saved, 5, 4);
  EXPECT_EQ(later.epoch, 0);
  EXPECT_EQ(later.position, 38);
  // The next batch of 4 does not fit what is left of epoch 0: it is the first of epoch 1.
  EXPECT_TRUE(same(loader.global_batch(later, 0, 4, 0, 4), loader.global_batch(10, 4, 0, 4)));
  // Saved at the end of an epoch, the same global batch goes on exactly as without the stop.
  EXPECT_TRUE(same(loader.global_batch(loader.state_after(6, 6), 0, 6, 0, 6), loader.global_batch(6, 6, 0, 6)));
  EXPECT_TRUE(same(loader.global_batch(loader.state_after(2, 6), 5, 6, 1, 3), loader.global_batch(7, 6, 1, 3)));
}

TEST(DataLoader, PreparedShardsMatchJsonl) {
  auto dir = scratch_dir();
  const std::string chat = data_path("jsonl/chat.jsonl");
  const auto tokenizer = tok::Tokenizer::bytes();
  DataOptions data = data_section(chat, 64);
  data.chat_template = "chatml";
  std::filesystem::create_directories(dir / "prepared");
  {
    ShardWriter writer((dir / "prepared" / "train.tsd").string(), {64, 0, tokenizer.vocab_size(), tokenizer_fingerprint(tokenizer), 0});
    PackStats stats = pack_file(chat, data, tokenizer, [&](std::vector<int32_t>&& rows) { writer.append(rows); });
    writer.commit(stats.targets);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "prepared" / "train.tsd.tmp"));
  DataLoader direct(data, tokenizer, 5);
  DataOptions prepared = data;
  prepared.train = (dir / "prepared").string();
  DataLoader mapped(prepared, tokenizer, 5);
  ASSERT_EQ(direct.num_sequences(), mapped.num_sequences());
  const int64_t n = direct.num_sequences();
  for (int64_t step = 0; step < 3; ++step) EXPECT_TRUE(same(direct.global_batch(step, n, 0, n), mapped.global_batch(step, n, 0, n)));
  EXPECT_EQ(Shard::open((dir / "prepared" / "train.tsd").string()).header().count, n);

  DataOptions other_len = prepared;
  other_len.seq_len = 32;
  EXPECT_EQ(error_of([&] { DataLoader(other_len, tokenizer, 5); }),
            (dir / "prepared" / "train.tsd").string() + ": prepared with seq_len 64 but data.seq_len is 32 (run prepare-data again)");
}

TEST(DataLoader, CorruptShardsAreRejected) {
  auto dir = scratch_dir();
  std::filesystem::create_directories(dir / "p");
  const std::string shard = write_file(dir / "p" / "train.tsd", "TSRDATA");
  EXPECT_NE(error_of([&] { Shard::open(shard); }).find("not a Tessera data shard"), std::string::npos);
  write_file(dir / "p" / "train.tsd", std::string(64, '\0'));
  EXPECT_NE(error_of([&] { Shard::open(shard); }).find("bad magic"), std::string::npos);
}

TEST(DataLoader, EmptyDatasetNamesTheFile) {
  auto dir = scratch_dir();
  const std::string path = write_file(dir / "empty.jsonl", "");
  EXPECT_EQ(error_of([&] { DataLoader(data_section(path, 8), tok::Tokenizer::bytes(), 0); }),
            path + ": no training examples");
  EXPECT_EQ(error_of([&] { DataLoader(data_section("", 8), tok::Tokenizer::bytes(), 0); }),
            "data.train is not set: name a .jsonl or text file, or a prepare-data folder");
}

TEST(DataLoader, MakeTokenBatchStacksSequences) {
  auto dir = scratch_dir();
  const std::string path = write_file(dir / "t.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"cdefgh\"}\n");
  DataLoader loader(data_section(path, 6), tok::Tokenizer::bytes(), 0);
  ASSERT_EQ(loader.num_sequences(), 2);
  const auto seqs = loader.global_batch(0, 2, 0, 2);
  TokenBatch b = make_token_batch(seqs, Device::cpu());
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seq, 6);
  EXPECT_EQ(b.ids.shape(), (Shape{12}));
  EXPECT_EQ(b.segment_ids.shape(), (Shape{2, 6}));
  EXPECT_EQ(b.num_targets, 3 + 7);  // a b EOS | c d e f g h EOS
  std::vector<int32_t> ids = b.ids.to_vector<int32_t>();
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 6), seqs[0].ids);
  EXPECT_EQ(b.labels.to_vector<int32_t>()[6 + 5], seqs[1].labels[5]);
}

TEST(DataLoader, PrepareDataCommandRoundTrip) {
  auto dir = scratch_dir();
  const std::string config = write_file(dir / "job.yaml", "model: {tokenizer: bytes}\ndata:\n  train: " +
                                                              data_path("jsonl/completion.jsonl") + "\n  seq_len: 32\n");
  const std::string command = std::string(TESSERA_BIN_DIR) + "/tessera prepare-data --config " + config +
                              " --set data.eval=" + data_path("jsonl/text.jsonl") + " --out " + (dir / "out").string() +
                              " > " + (dir / "log").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  const auto tokenizer = tok::Tokenizer::bytes();
  for (auto [split, file] : {std::pair{Split::train, "completion.jsonl"}, std::pair{Split::eval, "text.jsonl"}}) {
    DataOptions direct = data_section(data_path(std::string("jsonl/") + file), 32);
    direct.eval = direct.train;
    DataOptions prepared = data_section((dir / "out").string(), 32);
    prepared.eval = prepared.train;
    DataLoader a(direct, tokenizer, 9, split), b(prepared, tokenizer, 9, split);
    const int64_t n = a.num_sequences();
    ASSERT_EQ(n, b.num_sequences()) << file;
    EXPECT_TRUE(same(a.global_batch(1, n, 0, n), b.global_batch(1, n, 0, n))) << file;
  }
}

}  // namespace
}  // namespace tessera::data
