// What a LoRA checkpoint records of its base, and the checks a resume or merge makes against it:
// the recorded sums round-trip through trainer_state.json; another file set, a changed file,
// another model.init or seed are each one error naming what differs; a moved base passes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "error_text.h"
#include "engine/checkpoint/base_weights.h"
#include "engine/checkpoint/trainer_state.h"

using namespace tessera;
using namespace tessera::checkpoint;

namespace {

std::string mismatch(const BaseWeights& saved, const BaseWeights& now) {
  return testing_util::error_of([&] { check_same_base(saved, now, "ckpt/step-7"); });
}

const std::string kSumA(64, 'a'), kSumB(64, 'b');

}  // namespace

TEST(BaseWeights, ChecksNameWhatDiffers) {
  const BaseWeights base{.path = "/m/base", .files = {{"model-1.safetensors", kSumA}, {"model-2.safetensors", kSumB}}};
  EXPECT_EQ(mismatch(base, base), testing_util::kNoError);
  BaseWeights moved = base;
  moved.path = "/elsewhere/base";
  EXPECT_EQ(mismatch(base, moved), testing_util::kNoError) << "the same files under another path";

  BaseWeights changed = base;
  changed.files["model-2.safetensors"] = kSumA;
  EXPECT_EQ(mismatch(base, changed),
            "/m/base/model-2.safetensors: SHA-256 aaaaaaaaaaaa... is not the bbbbbbbbbbbb... recorded in ckpt/step-7: "
            "its adapters were trained on /m/base/model-2.safetensors as it was then; resume on the base they were "
            "trained on (or start a new checkpoint.dir)");

  BaseWeights fewer = base;
  fewer.files.erase("model-2.safetensors");
  EXPECT_NE(mismatch(base, fewer).find("ckpt/step-7: its adapters were trained on the base /m/base "
                                       "(model-1.safetensors, model-2.safetensors); this job's base is /m/base "
                                       "(model-1.safetensors)"),
            std::string::npos)
      << mismatch(base, fewer);

  const BaseWeights init = init_base("{\"hidden_size\":32}", 5);
  EXPECT_EQ(mismatch(init, init), testing_util::kNoError);
  EXPECT_NE(mismatch(init, init_base("{\"hidden_size\":32}", 6)).find("model.init {\"hidden_size\":32} seed 5; "
                                                                        "this job's base is model.init "
                                                                        "{\"hidden_size\":32} seed 6"),
            std::string::npos);
  EXPECT_NE(mismatch(init, base).find("this job's base is /m/base"), std::string::npos);
  EXPECT_EQ(mismatch(BaseWeights{}, base), testing_util::kNoError) << "an older checkpoint records none: a warning";
}

TEST(BaseWeights, RecordedInTrainerStateAndReadBack) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "base_weights";
  std::filesystem::create_directories(dir);
  TrainerState state{.step = 3};
  state.base = {.path = "/m/base", .files = {{"model.safetensors", kSumA}}};
  std::ofstream(dir / kTrainerFile) << trainer_state_json(state, 2);
  const TrainerState back = read_trainer_state(dir.string());
  EXPECT_EQ(back.base.path, "/m/base");
  EXPECT_EQ(back.base.files, state.base.files);
  state.base = init_base("{}", 9);
  std::ofstream(dir / kTrainerFile) << trainer_state_json(state, 2);
  EXPECT_EQ(read_trainer_state(dir.string()).base.init, "{} seed 9");
  state.base = {};
  std::ofstream(dir / kTrainerFile) << trainer_state_json(state, 2);
  EXPECT_TRUE(read_trainer_state(dir.string()).base.empty());
  std::ofstream(dir / kTrainerFile) << R"({"step": 1, "skipped_steps": 0, "loader": {"seed": 1, "epoch": 0,
    "position": 0}, "base": {"path": 7}})";
  try {
    read_trainer_state(dir.string());
    ADD_FAILURE() << "a malformed base was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trainer_state.json: 'base': "), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
