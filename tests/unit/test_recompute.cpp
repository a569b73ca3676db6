// train.recompute_norms_swiglu and activation checkpointing change no number on the CPU.
#include "recompute_check.h"

TEST(Recompute, NormsSwigluAndLayersGiveTheSameLossAndGradients) {
  tessera::testing_util::check_recompute_is_exact(tessera::Device::cpu());
}
