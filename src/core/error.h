// Errors for people: one clear line that names what and where.
// Code throws tessera::Error; the CLI prints its message on one line and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace tessera {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
};

// Raises tessera::Error naming a failed CUDA/cuBLAS/NCCL call (usable from .cu files too).
[[noreturn]] void fail_call(const char* library, const char* call, const char* file, int line, const char* what);

}  // namespace tessera

// fmt's compile-time format checks are consteval code that nvcc cannot compile, so CUDA sources
// (.cu) throw Error with plain strings and the fmt-based helpers below are for host code only.
#if !defined(__CUDACC__)
#include <fmt/format.h>

namespace tessera {

// Raises tessera::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Runs fn; an Error escaping it is re-thrown with "context: " in front, so errors
// deep in a parser still say which file or tensor they were about.
template <typename Fn>
decltype(auto) with_context(const std::string& context, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace tessera

// Checks an invariant or an input; on failure throws tessera::Error with the formatted message.
#define TS_CHECK(cond, ...)                \
  do {                                     \
    if (!(cond)) ::tessera::fail(__VA_ARGS__); \
  } while (0)

#endif  // !__CUDACC__
