#include "core/fault_injection.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace tessera {

bool fault_injected(std::string_view point) {
  const char* value = std::getenv("TESSERA_FAULT_INJECT");
  return value != nullptr && point == value;
}

int injected_write_error(const std::string& path) {
  const char* value = std::getenv("TESSERA_FAULT_INJECT");
  if (value == nullptr) return 0;
  const std::string name = std::filesystem::path(path).filename().string();
  if ("kill:" + name == value) ::raise(SIGKILL);
  return name == value ? ENOSPC : 0;
}

std::string error_text(int error, bool injected) {
  return std::string(std::strerror(error)) + (injected ? " (injected by TESSERA_FAULT_INJECT)" : "");
}

}  // namespace tessera
