#include "kernels/launch_overlap.h"

#include <cstdlib>
#include <cstring>

namespace tessera::ops {

namespace {
thread_local bool overlap_on = false;
}  // namespace

LaunchOverlap::LaunchOverlap(bool on) : prior_(overlap_on) { overlap_on = on; }
LaunchOverlap::~LaunchOverlap() { overlap_on = prior_; }

bool LaunchOverlap::active() { return overlap_on; }

bool LaunchOverlap::requested() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_PDL");
    return !v || std::strcmp(v, "0") != 0;
  }();
  return on;
}

}  // namespace tessera::ops
