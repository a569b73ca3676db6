// Tessera's quantized checkpoint (engine/model_weights.h describes the folder), written by
// `tessera export --format quantized` and `tessera quantize`: round-to-nearest on the scheme's grid,
// one tensor at a time, or GPTQ against calibration data (engine/sequential_gptq.h). A QAT checkpoint defaults to its own scheme and modules and
// quantizes its weights in the compute dtype its forward used, so the file dequantizes to exactly
// the weights the last QAT forward saw.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "engine/quant_targets.h"
#include "engine/sequential_gptq.h"
#include "kernels/quant_format.h"

namespace tessera {

struct QuantizedExportOptions {
  std::string checkpoint;  // a step-<N> folder, or
  std::string model;       // a Hugging Face model folder
  std::string out;         // a new or empty folder
  std::optional<QuantSpec> scheme;  // unset: a QAT checkpoint's own (required otherwise)
  std::vector<std::string> modules;  // empty: a QAT checkpoint's own, else all-linear
  DType dtype = DType::BF16;         // the tensors left unquantized
  uint64_t max_shard_bytes = 5'000'000'000;
  std::optional<GptqCalibration> gptq = std::nullopt;  // set: GPTQ (tessera quantize --method gptq) instead of RTN
};

void export_quantized(const QuantizedExportOptions& options);

// The tensor bytes such an export of `config` writes (the files add their headers): the packed
// parts of the tensors `targets` selects, every other tensor in `dtype`. With no target selected,
// the model's size in `dtype`.
struct QuantizedBytes {
  uint64_t packed = 0, plain = 0;
  uint64_t total() const { return packed + plain; }
};
QuantizedBytes quantized_tensor_bytes(const ModelConfig& config, const QuantTargets& targets, DType dtype);

}  // namespace tessera
