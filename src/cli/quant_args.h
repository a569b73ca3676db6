// The quantization options `tessera export --format quantized` and `tessera quantize` share.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/export_quantized.h"

namespace tessera::cli {

struct QuantArgs {
  std::string checkpoint, model, out, scheme, dtype = "bf16";
  int64_t group_size = 0;  // 0: the scheme's (int4: 32)
  bool asymmetric = false;
  std::vector<std::string> modules;
};

// Adds --scheme, --group-size, --asymmetric, --modules (and --dtype for the tensors left unquantized
// when `with_dtype`) to `cmd`.
std::shared_ptr<QuantArgs> add_quant_args(CLI::App* cmd, bool with_dtype);

QuantizedExportOptions quantized_export_options(const QuantArgs& args);

}  // namespace tessera::cli
