// Programmatic dependent launch for the decode path (CUDA, sm_90). Inside a LaunchOverlap scope
// that is on, the kernels a decode step runs (those launched through cuda::launch_kernel) may
// start while the kernel before them on the stream finishes: each waits for it (griddepcontrol)
// before touching what it wrote. A kernel may read fixed weights before that wait (and paged
// attention's v4 a step's block tables, positions, sequences and slots), so a scope is only for
// work where no kernel writes a weight (or those inputs) that a later one reads: an inference step
// with fixed weights, whose inputs a copy writes before its first kernel. On by default (session 8 call B: 1B batch-1 decoding 757 tok/s with it, 734
// without); TESSERA_PDL=0 in the environment turns it off. The scope is per thread; nesting
// restores the outer state.
#pragma once

namespace tessera::ops {

class LaunchOverlap {
 public:
  LaunchOverlap() : LaunchOverlap(requested()) {}
  explicit LaunchOverlap(bool on);
  ~LaunchOverlap();
  LaunchOverlap(const LaunchOverlap&) = delete;
  LaunchOverlap& operator=(const LaunchOverlap&) = delete;

  static bool active();     // this thread is inside a scope that is on
  static bool requested();  // unless TESSERA_PDL=0 (read once)

 private:
  bool prior_;
};

}  // namespace tessera::ops
