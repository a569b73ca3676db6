// Jobs that cannot wedge: chat data whose packed sequences often hold no assistant token (one long
// user turn, one short reply per record, chatml). A micro-batch without targets adds nothing and a
// global batch without any is skipped and counted on every rank; the run finishes, and its curve
// is the same on 1, 2 and 3 ranks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_command.h"

namespace fs = std::filesystem;

namespace {

// 20 records of one user turn (about 150 bytes) and a reply of a few bytes.
std::string chat_records(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path path = dir / "chat.jsonl";
  std::ofstream out(path);
  for (int i = 0; i < 20; ++i) {
    std::string question = "Please read this long question number " + std::to_string(i) + " carefully: ";
    for (int k = 0; k < 40; ++k) question += "la ";
    out << nlohmann::json{{"messages", {{{"role", "user"}, {"content", question + "?"}},
                                        {{"role", "assistant"}, {"content", "ok " + std::to_string(i)}}}}}.dump()
        << "\n";
  }
  return path.string();
}

struct Row {
  double loss;
  bool skipped;
};

std::vector<Row> metrics(const fs::path& file) {
  std::vector<Row> rows;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    rows.push_back({j["loss"], j["skipped"]});
  }
  return rows;
}

}  // namespace

TEST(TrainChat, BatchesWithoutTargetsNeitherStopTheJobNorDependOnTheRanks) {
  const fs::path dir = fs::path(::testing::TempDir()) / "train_chat";
  fs::remove_all(dir);
  const std::string data = chat_records(dir);
  // Global batch 6 as 1 x 6 micro-batches of 1, 2 ranks x 3, 3 ranks x 2 micro-batches of 1.
  const struct { int ranks, micro, accum; } runs[] = {{1, 1, 6}, {2, 3, 1}, {3, 1, 2}};
  std::vector<std::vector<Row>> curves;
  for (const auto& r : runs) {
    const fs::path file = dir / ("metrics-" + std::to_string(r.ranks) + ".jsonl");
    const auto result = tessera::testing_util::run_command(
        TESSERA_SOURCE_DIR "/scripts/mpirun.sh -np " + std::to_string(r.ranks) + " " TESSERA_BIN_DIR
        "/tessera train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" + data +
        " --set data.format=chat --set data.chat_template=chatml --set data.seq_len=32 --set train.steps=12"
        " --set train.schedule.warmup_steps=1 --set train.micro_batch_size=" + std::to_string(r.micro) +
        " --set train.grad_accum=" + std::to_string(r.accum) + " --set checkpoint.dir= --set log.every_steps=1" +
        " --set log.metrics_file=" + file.string());
    ASSERT_EQ(result.exit_code, 0) << r.ranks << " ranks: " << result.output;
    EXPECT_NE(result.output.find("the global batch has no tokens to predict; the step was skipped"), std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("done: 12 steps"), std::string::npos) << result.output;
    curves.push_back(metrics(file));
    ASSERT_EQ(curves.back().size(), 12u) << r.ranks << " ranks";
  }
  int skipped = 0, trained = 0;
  for (size_t s = 0; s < 12; ++s) {
    const Row& want = curves[0][s];
    (want.skipped ? skipped : trained)++;
    if (want.skipped) EXPECT_EQ(want.loss, 0.0) << "step " << s + 1;
    for (size_t k = 1; k < curves.size(); ++k) {
      EXPECT_EQ(curves[k][s].skipped, want.skipped) << runs[k].ranks << " ranks, step " << s + 1;
      EXPECT_NEAR(curves[k][s].loss, want.loss, 1e-4 * want.loss) << runs[k].ranks << " ranks, step " << s + 1;
    }
  }
  EXPECT_GT(skipped, 0);
  EXPECT_GT(trained, 6) << "most steps have targets somewhere in their global batch";
}
