// main() for multi-rank test binaries: initialises the world (MPI) and lets only rank 0 print,
// unless a test fails on another rank. mpirun's exit code is non-zero if any rank fails.
#include <gtest/gtest.h>

#include "comm/world.h"

namespace {

// Prints failures only: ranks > 0 stay quiet unless something goes wrong there.
class FailuresOnly : public testing::EmptyTestEventListener {
 public:
  explicit FailuresOnly(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (result.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, result.file_name() ? result.file_name() : "?",
                   result.line_number(), result.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const tessera::World& world = tessera::World::init();
  if (world.rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailuresOnly(world.rank));
  }
  return RUN_ALL_TESTS();
}
