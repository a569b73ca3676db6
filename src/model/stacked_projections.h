// A layer's projections of one input stacked row after row in one buffer: [q; k; v] (their
// biases likewise) and [gate; up], each Linear's weight (and bias) a view into it. The numbers and
// the Linears stay as they were; only where the bytes lie changes, so that one gemm can compute
// the projections together (InferenceOptions::stacked_projections). Weights that are packed, of
// other dtypes, devices or input sizes stay where they are.
#pragma once

#include <span>

#include "model/transformer_params.h"

namespace tessera {

// Moves each layer's q/k/v and gate/up weights (and q/k/v's biases, when all three have one) into
// one buffer per group; the old tensors are released as each group moves, so the weights are held
// once (plus one group in flight).
void stack_projections(ModelParams& params);

// The tensors as one [their rows, ...] view when they lie row after row in one storage (as
// stack_projections leaves them), same dtype and trailing shape; else undefined.
Tensor stacked_view(std::span<const Tensor* const> parts);

}  // namespace tessera
