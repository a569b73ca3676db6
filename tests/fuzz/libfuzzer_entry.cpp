// libFuzzer entry point for one driver (TESSERA_FUZZ_DRIVER), built with -DTESSERA_LIBFUZZER=ON:
//   build-fuzz/tests/tessera_libfuzz_gguf -max_total_time=600 corpus/
// A clean rejection returns normally; anything else escapes and libFuzzer reports it.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include "fuzz/drivers.h"

namespace {

const tessera::fuzz::Driver& driver() {
  for (const auto& d : tessera::fuzz::drivers())
    if (d.name == TESSERA_FUZZ_DRIVER) return d;
  throw std::logic_error("no fuzz driver " TESSERA_FUZZ_DRIVER);
}

const std::string& scratch() {
  static const std::string dir = [] {
    auto p = std::filesystem::temp_directory_path() / ("tessera-libfuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    spdlog::set_level(spdlog::level::off);
    return p.string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& d = driver();
  try {
    d.parse(std::string(reinterpret_cast<const char*>(data), size), scratch());
  } catch (const std::exception& e) {
    if (!d.clean_error(e)) throw;
  }
  return 0;
}
