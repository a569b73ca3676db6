// train.recompute_norms_swiglu and activation checkpointing on CUDA: the same loss and gradients
// as keeping everything (tests/recompute_check.h).
#include "recompute_check.h"

TEST(RecomputeCuda, NormsSwigluAndLayersGiveTheSameLossAndGradients) {
  TS_REQUIRE_GPU();
  tessera::testing_util::check_recompute_is_exact(tessera::Device::cuda(0));
}
