#include "kernels/kernel_variant.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace tessera {

int kernel_variant(const char* name, int count, int fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  for (int v = 1; v <= count; ++v)
    if (value[0] == 'v' && std::to_string(v) == value + 1) return v;
  throw Error(std::string(name) + ": unknown '" + value + "' (expected v1 to v" + std::to_string(count) + ")");
}

}  // namespace tessera
