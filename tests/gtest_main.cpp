// main() for the single-process test binaries. When a suite's SetUpTestSuite fails, gtest reports
// its cases as "[  SKIPPED ]", and ctest (gtest_discover_tests' skip pattern) would show them as
// skipped, hiding the failure: here each such case fails instead.
#include <gtest/gtest.h>

namespace {

class SuiteSetupFailures : public testing::EmptyTestEventListener {
  void OnTestStart(const testing::TestInfo& info) override {
    const testing::TestSuite* suite = testing::UnitTest::GetInstance()->current_test_suite();
    if (suite && suite->ad_hoc_test_result().Failed())
      ADD_FAILURE() << info.test_suite_name() << "::SetUpTestSuite failed (see above)";
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new SuiteSetupFailures);
  return RUN_ALL_TESTS();
}
