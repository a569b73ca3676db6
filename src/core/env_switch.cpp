#include "core/env_switch.h"

#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"

namespace tessera {

bool env_switch(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  if (std::string_view(v) == "1") return true;
  if (std::string_view(v) == "0") return false;
  throw Error(std::string(name) + ": '" + v + "' is not 0 or 1");
}

}  // namespace tessera
