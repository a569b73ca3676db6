// Checkpoints that say "saved" are saved: a write that fails (a full disk, injected) is an error on
// every rank that names the file and keeps the checkpoints before it; keep_last deletes only older
// folders of its own lineage; a deletion never leaves a folder that looks complete; names that are
// not checkpoints are ignored; a job starting from step 0 over checkpoints is refused unless told.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "error_text.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/checkpoint_dir.h"
#include "engine/checkpoint/manifest.h"
#include "shared_dir.h"
#include "tiny_training.h"

using namespace tessera;
using testing_util::shared_dir;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<ZeroStore> small_store(Communicator& comm) {
  auto store = std::make_unique<ZeroStore>(
      testing_util::tiny_config(true), ZeroOptions{.stage = 3, .compute_dtype = DType::F32, .device = Device::cpu()},
      comm);
  store->init_random(5, 0.1f);
  return store;
}

// Step `step` of the run `lineage`.
checkpoint::TrainerState at(int64_t step, const std::string& lineage) {
  checkpoint::TrainerState state;
  state.step = step;
  state.lineage = lineage;
  return state;
}

// TESSERA_FAULT_INJECT=point on this rank while in scope.
struct InjectedFault {
  InjectedFault(const char* point, bool here) {
    if (here) ::setenv("TESSERA_FAULT_INJECT", point, 1);
  }
  ~InjectedFault() { ::unsetenv("TESSERA_FAULT_INJECT"); }
};


void remove_on_rank0(Communicator& world, const std::string& dir) {
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
}

}  // namespace

TEST(CheckpointSafety, AFailedWriteIsAnErrorOnEveryRankAndKeepsThePreviousCheckpoint) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-fail");
  auto store = small_store(*world);
  const std::string good = checkpoint::save(dir, *store, at(1, "run"), "config: x\n", 1, *world);
  struct Case {
    const char* file;
    int rank;  // the rank whose write fails
  };
  // state.h5 on the last rank fails when it closes the file after its slices; on rank 0 already
  // when the file is made.
  for (const Case c : {Case{"state.h5", world->size() - 1}, Case{"state.h5", 0}, Case{"trainer_state.json", 0},
                       Case{"config.yaml", 0}, Case{"COMPLETE", 0}}) {
    std::string error;
    {
      InjectedFault fault(c.file, world->rank() == c.rank);
      error = testing_util::error_of([&] { checkpoint::save(dir, *store, at(2, "run"), "config: x\n", 1, *world); });
    }
    EXPECT_NE(error.find("checkpoint of step 2 not saved: "), std::string::npos) << c.file << ": " << error;
    EXPECT_NE(error.find(std::string("/") + c.file + ": cannot write: No space left on device"), std::string::npos)
        << c.file << " on rank " << c.rank << ": " << error;
    world->barrier();
    EXPECT_EQ(checkpoint::verify_manifest(good), "") << c.file;  // kept: the failure pruned nothing
    EXPECT_FALSE(fs::exists(dir + "/step-2")) << c.file;
    EXPECT_FALSE(fs::exists(dir + "/.step-2.tmp")) << c.file;  // its space given back
    world->barrier();  // before rank 0 starts the next save
    EXPECT_EQ(checkpoint::find(dir, "auto", *world), good) << c.file;
  }
  // Without the fault the same save goes through and then prunes step-1.
  checkpoint::save(dir, *store, at(2, "run"), "config: x\n", 1, *world);
  EXPECT_EQ(checkpoint::verify_manifest(dir + "/step-2"), "");
  EXPECT_FALSE(fs::exists(good));
  remove_on_rank0(*world, dir);
}

// The case: a folder holding step-50 of an earlier run; this run (another lineage) saves 5,
// 10 and 12 with keep_last 1. Today's main deleted each new one at once.
TEST(CheckpointSafety, KeepLastPrunesOnlyOlderFoldersOfItsOwnLineage) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-lineage");
  auto store = small_store(*world);
  checkpoint::save(dir, *store, at(50, "earlier"), "", 0, *world);
  checkpoint::save(dir, *store, at(4, "this"), "", 0, *world);
  checkpoint::save(dir, *store, at(3, "this"), "", 0, *world);
  if (world->rank() == 0) std::ofstream(dir + "/step-3/trainer_state.json") << "{ not json";  // cannot parse
  for (int64_t step : {5, 10, 12}) {
    checkpoint::save(dir, *store, at(step, "this"), "", 1, *world);
    EXPECT_EQ(checkpoint::verify_manifest(dir + "/step-" + std::to_string(step)), "") << "step " << step;
  }
  EXPECT_FALSE(fs::exists(dir + "/step-4"));
  EXPECT_FALSE(fs::exists(dir + "/step-5"));
  EXPECT_FALSE(fs::exists(dir + "/step-10"));
  EXPECT_EQ(checkpoint::verify_manifest(dir + "/step-50"), "");  // another lineage, never touched
  EXPECT_TRUE(fs::exists(dir + "/step-3/state.h5"));             // cannot parse, never touched
  // keep_last 2 keeps the one before; a newer folder of the lineage is never pruned by an older save.
  checkpoint::save(dir, *store, at(13, "this"), "", 2, *world);
  checkpoint::save(dir, *store, at(20, "this"), "", 0, *world);
  checkpoint::save(dir, *store, at(14, "this"), "", 1, *world);
  EXPECT_FALSE(fs::exists(dir + "/step-12"));
  EXPECT_FALSE(fs::exists(dir + "/step-13"));
  EXPECT_EQ(checkpoint::verify_manifest(dir + "/step-14"), "");
  EXPECT_EQ(checkpoint::verify_manifest(dir + "/step-20"), "");
  remove_on_rank0(*world, dir);
}

// A kill during pruning (injected right after the deletion's first step) leaves no folder that
// looks complete: the one being deleted is already under a hidden name, which the next job's start
// clears away.
TEST(CheckpointSafety, AnInterruptedDeletionLeavesNoCompleteLookingFolder) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-prune");
  auto store = small_store(*world);
  checkpoint::save(dir, *store, at(1, "run"), "", 1, *world);
  {
    InjectedFault fault("prune", world->rank() == 0);
    checkpoint::save(dir, *store, at(2, "run"), "", 1, *world);  // a failed deletion is a warning
  }
  world->barrier();
  EXPECT_FALSE(fs::exists(dir + "/step-1"));
  EXPECT_TRUE(fs::exists(dir + "/.step-1.deleting"));
  for (const auto& folder : checkpoint::step_folders(dir)) EXPECT_EQ(checkpoint::verify_manifest(folder.path), "");
  EXPECT_EQ(checkpoint::find(dir, "auto", *world), dir + "/step-2");
  world->barrier();
  EXPECT_EQ(checkpoint::start(dir, "auto", false, *store, *world), dir + "/step-2");
  EXPECT_FALSE(fs::exists(dir + "/.step-1.deleting"));
  remove_on_rank0(*world, dir);
}

// step-99999999999999999999 stopped today's main with "stoll"; it and other names that are not
// checkpoints are passed over.
TEST(CheckpointSafety, NamesThatAreNotCheckpointsAreIgnored) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-stray");
  auto store = small_store(*world);
  const std::string good = checkpoint::save(dir, *store, at(3, "run"), "", 0, *world);
  if (world->rank() == 0) {
    for (const char* name : {"step-99999999999999999999", "step-abc", "step-", "step-007", "step--5", "export"})
      fs::create_directories(dir + "/" + name);
    std::ofstream(dir + "/step-8") << "a file";
    std::ofstream(dir + "/metrics.jsonl") << "{}\n";
  }
  world->barrier();
  EXPECT_EQ(checkpoint::find(dir, "auto", *world), good);
  EXPECT_EQ(checkpoint::start(dir, "auto", false, *store, *world), good);
  if (world->rank() == 0) {
    ASSERT_EQ(checkpoint::step_folders(dir).size(), 1u);
    EXPECT_EQ(checkpoint::step_folders(dir)[0].step, 3);
  }
  remove_on_rank0(*world, dir);
}

TEST(CheckpointSafety, StartingFromStepZeroOverCheckpointsNeedsOverwrite) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-claim");
  auto store = small_store(*world);
  checkpoint::save(dir, *store, at(50, "earlier"), "", 0, *world);
  std::string error = testing_util::error_of([&] { checkpoint::start(dir, "never", false, *store, *world); });
  EXPECT_NE(error.find("already holds checkpoints (step-50)"), std::string::npos) << error;
  EXPECT_NE(error.find("checkpoint.resume is never"), std::string::npos) << error;
  EXPECT_NE(error.find("checkpoint.overwrite: true"), std::string::npos) << error;
  world->barrier();
  if (world->rank() == 0) fs::remove(dir + "/step-50/COMPLETE");  // now none is intact
  world->barrier();
  error = testing_util::error_of([&] { checkpoint::start(dir, "auto", false, *store, *world); });
  EXPECT_NE(error.find("step-50 (no COMPLETE marker"), std::string::npos) << error;
  EXPECT_NE(error.find("none of them is complete and intact"), std::string::npos) << error;
  EXPECT_TRUE(fs::exists(dir + "/step-50/state.h5"));
  EXPECT_EQ(checkpoint::start(dir, "auto", true, *store, *world), "");
  EXPECT_FALSE(fs::exists(dir + "/step-50"));
  EXPECT_EQ(checkpoint::start(dir, "never", false, *store, *world), "");  // nothing there any more
  remove_on_rank0(*world, dir);
}

TEST(CheckpointSafety, ADirThatIsAFileIsFoundAtTheStart) {
  auto world = make_mpi_communicator(World::get());
  const std::string file = shared_dir(*world, "ckpt-file");
  if (world->rank() == 0) std::ofstream(file) << "not a folder";
  world->barrier();
  auto store = small_store(*world);
  const std::string error = testing_util::error_of([&] { checkpoint::start(file, "auto", false, *store, *world); });
  EXPECT_EQ(error, "checkpoint.dir: " + file + " is not a folder");
  remove_on_rank0(*world, file);
}
