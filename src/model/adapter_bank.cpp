#include "model/adapter_bank.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

int32_t AdapterBank::index(const std::string& name) const {
  if (name.empty()) return -1;
  const auto it = std::find(names.begin(), names.end(), name);
  TS_CHECK(it != names.end(), "adapter '{}' is not loaded", name);
  return static_cast<int32_t>(it - names.begin());
}

}  // namespace tessera
