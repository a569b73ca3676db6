#include "kernels/launch_overlap.h"

#include "core/env_switch.h"

namespace tessera::ops {

namespace {
thread_local bool overlap_on = false;
}  // namespace

LaunchOverlap::LaunchOverlap(bool on) : prior_(overlap_on) { overlap_on = on; }
LaunchOverlap::~LaunchOverlap() { overlap_on = prior_; }

bool LaunchOverlap::active() { return overlap_on; }

bool LaunchOverlap::requested() {
  static const bool on = env_switch("TESSERA_PDL", true);
  return on;
}

}  // namespace tessera::ops
