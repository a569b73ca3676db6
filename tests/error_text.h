// What a call refuses with, as text, so a test can compare the whole message: the tests of
// "bad input gets one clear error" all read errors this way.
#pragma once

#include <string>
#include <utility>

#include "core/error.h"

namespace tessera::testing_util {

// What error_of gives when the call throws nothing (no Tessera error reads like it).
inline const std::string kNoError = "(no error)";

// The message of the tessera::Error that fn() throws, or kNoError. Any other exception passes
// through and fails the test: it is not one of the clear errors expected.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
  } catch (const Error& e) {
    return e.what();
  }
  return kNoError;
}

// error_of with `path` at the start of the message shown as `name`: errors name the temporary
// file they read, and expectations read "job.yaml:3: ..." whatever the folder.
template <typename Fn>
std::string error_of(Fn&& fn, const std::string& path, const std::string& name) {
  std::string message = error_of(std::forward<Fn>(fn));
  return message.starts_with(path) ? message.replace(0, path.size(), name) : message;
}

}  // namespace tessera::testing_util
