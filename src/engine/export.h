// `tessera export`: a checkpoint as a Hugging Face model folder (config.json, safetensors shards
// of at most 5 GB with their index, the tokenizer files), streamed one tensor at a time, so the
// whole model is never in memory at once.
#pragma once

#include <string>

#include "core/dtype.h"

namespace tessera {

struct ExportOptions {
  std::string checkpoint;  // a step-<N> folder (complete and intact)
  std::string out;         // the folder to write; must not exist or be empty
  DType dtype = DType::BF16;
  uint64_t max_shard_bytes = 5'000'000'000;
};

void export_safetensors(const ExportOptions& options);

}  // namespace tessera
