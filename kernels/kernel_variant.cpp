#include "kernels/kernel_variant.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"

namespace tessera {

int kernel_variant(const char* name, int count, int fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  for (int v = 1; v <= count; ++v)
    if (value[0] == 'v' && std::to_string(v) == value + 1) return v;
  throw Error(std::string(name) + ": unknown '" + value + "' (expected v1 to v" + std::to_string(count) + ")");
}

int env_choice(const char* name, std::initializer_list<int> choices, bool with_auto, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  std::vector<std::string> names;
  for (int choice : choices) {
    if (std::to_string(choice) == v) return choice;
    names.push_back(std::to_string(choice));
  }
  if (with_auto && std::string(v) == "auto") return 0;
  if (with_auto) names.push_back("auto");
  std::string expected = names[0];  // "a, b or c"
  for (size_t i = 1; i < names.size(); ++i) expected += (i + 1 == names.size() ? " or " : ", ") + names[i];
  throw Error(std::string(name) + ": unknown '" + v + "' (expected " + expected + ")");
}

}  // namespace tessera
