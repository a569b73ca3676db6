// Runs a shell command for the end-to-end tests: its exit code and its stdout + stderr.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <utility>

namespace tessera::testing_util {

struct CommandResult {
  int exit_code;
  std::string output;
};

inline CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// The tessera binary of this build with `args`.
inline CommandResult run_tessera(const std::string& args) {
  return run_command(std::string(TESSERA_BIN_DIR) + "/tessera " + args);
}

// The same as {exit code, output}, for structured bindings.
inline std::pair<int, std::string> tessera_cli(const std::string& args) {
  const CommandResult r = run_tessera(args);
  return {r.exit_code, r.output};
}

}  // namespace tessera::testing_util
