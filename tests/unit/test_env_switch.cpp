#include <gtest/gtest.h>

#include <cstdlib>

#include "core/env_switch.h"
#include "core/error.h"

namespace tessera {
namespace {

constexpr const char* kName = "TESSERA_TEST_ENV_SWITCH";

TEST(EnvSwitch, UnsetOrEmptyGivesTheFallback) {
  ::unsetenv(kName);
  EXPECT_TRUE(env_switch(kName, true));
  EXPECT_FALSE(env_switch(kName, false));
  ::setenv(kName, "", 1);
  EXPECT_TRUE(env_switch(kName, true));
  ::unsetenv(kName);
}

TEST(EnvSwitch, ZeroAndOneOverrideEitherFallback) {
  ::setenv(kName, "1", 1);
  EXPECT_TRUE(env_switch(kName, false));
  ::setenv(kName, "0", 1);
  EXPECT_FALSE(env_switch(kName, true));
  ::unsetenv(kName);
}

TEST(EnvSwitch, AnythingElseIsAnErrorNamingTheVariable) {
  for (const char* bad : {"yes", "2", "off", "00"}) {
    ::setenv(kName, bad, 1);
    try {
      env_switch(kName, true);
      ADD_FAILURE() << bad << " was taken";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(kName), std::string::npos) << e.what();
    }
  }
  ::unsetenv(kName);
}

}  // namespace
}  // namespace tessera
