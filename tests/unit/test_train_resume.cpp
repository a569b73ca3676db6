// Resume continues exactly, through the binary on the CPU: a run stopped by train.stop_after and
// resumed has the uninterrupted run's loss and lr at every step; a changed schedule horizon is
// refused; the data stream goes on from the checkpoint whatever the new global batch; a resume
// with nothing left to do says so.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_command.h"

namespace fs = std::filesystem;

namespace {

constexpr auto run = tessera::testing_util::tessera_cli;  // {exit code, output}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("train_resume_" + name);
  fs::remove_all(dir);
  return dir;
}

// The tiny CPU job on the README with its checkpoints and metrics in `dir`, every step logged.
std::string tiny_job(const fs::path& dir) {
  return "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
         "/README.md --set checkpoint.dir=" + (dir / "ckpt").string() + " --set checkpoint.every_steps=0" +
         " --set log.metrics_file=" + (dir / "metrics.jsonl").string() + " --set log.every_steps=1";
}

struct Row {
  int64_t step;
  double loss, lr;
};

std::vector<Row> metrics(const fs::path& dir) {
  std::vector<Row> rows;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) rows.push_back({j["step"], j["loss"], j["lr"]});
  }
  return rows;
}

nlohmann::json trainer_state(const fs::path& folder) {
  std::ifstream in(folder / "trainer_state.json");
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(TrainResume, StoppedAndResumedRunHasTheUninterruptedCurve) {
  const fs::path whole = fresh_dir("whole"), parts = fresh_dir("parts");
  const std::string warmup = " --set train.schedule.warmup_steps=1";  // steps 2-6 decay
  auto [code, out] = run(tiny_job(whole) + warmup + " --set train.steps=6");
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = run(tiny_job(parts) + warmup + " --set train.steps=6 --set train.stop_after=3");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("stopped after step 3 of 6 (train.stop_after)"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(parts / "ckpt/step-3/COMPLETE"));
  EXPECT_EQ(trainer_state(parts / "ckpt/step-3")["schedule_steps"], 6);
  // Resumed with another split of the same global batch (2 x 2 instead of 4 x 1).
  std::tie(code, out) =
      run(tiny_job(parts) + warmup + " --set train.steps=6 --set train.micro_batch_size=2 --set train.grad_accum=2");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("resumed from " + (parts / "ckpt/step-3").string() + " (step 3"), std::string::npos) << out;

  const std::vector<Row> want = metrics(whole), got = metrics(parts);
  ASSERT_EQ(want.size(), 6u);
  ASSERT_EQ(got.size(), 6u);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].step, want[i].step);
    EXPECT_NEAR(got[i].loss, want[i].loss, 1e-4 * want[i].loss) << "step " << want[i].step;
    EXPECT_NEAR(got[i].lr, want[i].lr, 1e-9 + 1e-6 * want[i].lr) << "step " << want[i].step;
  }
  EXPECT_GT(want[3].lr, 0);
  EXPECT_LT(want[3].lr, want[2].lr) << "the cosine decay goes on from step 3, it does not restart";
}

TEST(TrainResume, ChangedScheduleHorizonIsRefusedUnlessAllowed) {
  const fs::path dir = fresh_dir("horizon");
  auto [code, out] = run(tiny_job(dir) + " --set train.steps=3");
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = run(tiny_job(dir) + " --set train.steps=5");
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find((dir / "ckpt/step-3").string() + ": its cosine lr schedule spans 3 steps but train.steps is 5"),
            std::string::npos) << out;
  EXPECT_EQ(out.find("step 4/5"), std::string::npos) << out;
  std::tie(code, out) = run(tiny_job(dir) + " --set train.steps=5 --set train.schedule.allow_new_horizon=true");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("step 5/5"), std::string::npos) << out;
  // A constant schedule has no horizon to change.
  std::tie(code, out) = run(tiny_job(dir) + " --set train.steps=6 --set train.schedule.type=constant");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("step 6/6"), std::string::npos) << out;
}

TEST(TrainResume, NothingToDoIsSaidAndNoLossInvented) {
  const fs::path dir = fresh_dir("nothing");
  auto [code, out] = run(tiny_job(dir) + " --set train.steps=3");
  ASSERT_EQ(code, 0) << out;
  for (const char* steps : {"2", "3"}) {
    std::tie(code, out) = run(tiny_job(dir) + " --set train.steps=" + steps);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("nothing to do: " + (dir / "ckpt/step-3").string() + " is at step 3 and train.steps is " + steps),
              std::string::npos) << out;
    EXPECT_EQ(out.find("last loss"), std::string::npos) << out;
    EXPECT_EQ(out.find("done:"), std::string::npos) << out;
  }
  EXPECT_EQ(metrics(dir).size(), 3u);
}

// Global batch 4 for two steps, then 2: the resumed job reads on from sequence 8 of the stream
// (sequences 8..11 in steps 3 and 4), not from step x 2.
TEST(TrainResume, DataGoesOnFromTheCheckpointWhateverTheGlobalBatch) {
  const fs::path dir = fresh_dir("data");
  auto [code, out] = run(tiny_job(dir) + " --set train.steps=4 --set train.stop_after=2");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(trainer_state(dir / "ckpt/step-2")["loader"]["position"], 8);
  std::tie(code, out) = run(tiny_job(dir) + " --set train.steps=4 --set train.micro_batch_size=2");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("data: epoch 0, sequence 8"), std::string::npos) << out;
  const auto loader = trainer_state(dir / "ckpt/step-4")["loader"];
  EXPECT_EQ(loader["epoch"], 0);
  EXPECT_EQ(loader["position"], 12);
}
