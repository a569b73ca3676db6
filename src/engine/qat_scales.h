// QAT's learned scales where they are not the model's business: their start (RTN's scales of the
// weights the forward fake-quantizes, written into the ZeRO store's master weights) and their use
// by the exports (the packed copy of a weight from its trained scales, exactly what the last QAT
// forward computed).
#pragma once

#include <functional>
#include <optional>

#include "engine/config/job_config.h"
#include "engine/export_source.h"
#include "engine/qat.h"
#include "zero/zero_store.h"

namespace tessera {

// Sets every learned scale (and zero point) of `store` to RTN's for the weight its projection
// fake-quantizes now (with LoRA the merged W + s B A, in the compute dtype): each layer is gathered
// in turn, its scales computed on its device and written into the master weights (each rank its
// shard, the Adam moments zeroed); then the working copies are rebuilt. Every rank calls it.
void init_learned_scales(ZeroStore& store, const ModelConfig& config, const QatSpec& spec);

// A checkpoint's learned scales, as its QAT job trained them.
struct LearnedScales {
  QuantTargets targets;           // the grid and the projections
  DType compute = DType::F32;     // the dtype its forward saw weights and scales in
};
// `source`'s, when it is a checkpoint of a job with quant.qat.learnable_scales; nullopt otherwise.
std::optional<LearnedScales> learned_scales(const ExportSource& source);
// The QAT job's compute dtype: bf16 on a GPU when train.dtype is bf16 (the CPU computes in fp32).
DType qat_compute_dtype(const JobConfig& job);

// The packed copy of the projection weight `param` (w: its values, fp32) from its learned scales:
// w, the scales and the zero points rounded to `compute` (the dtype the job's forward saw them in)
// and quantized by ops::quantize_scaled under `spec`, as that forward did. `rows`, when given,
// reorders the rows of w and of the scales alike first (GGUF's q/k permutation).
PackedTensor quantize_learned(const ExportSource& source, const ParamSpec& param, const Tensor& w,
                              const QuantSpec& spec, DType compute,
                              const std::function<Tensor(const Tensor&)>& rows = nullptr);

}  // namespace tessera
