// The frozen base a LoRA checkpoint's adapters were trained against. A LoRA checkpoint holds only
// the trainable tensors, so it records which base they belong to: model.path and the SHA-256 of
// every weight file loaded from it, or, for a model.init base, the init mapping and train.seed
// that make it again. Resuming (or merging) against another base is then one clear error naming
// the file, not training that goes on over other weights without a word.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "comm/communicator.h"

namespace tessera::checkpoint {

struct BaseWeights {
  std::string path;                           // model.path as the job named it; "" for a model.init base
  std::map<std::string, std::string> files;   // weight file (name inside path) -> SHA-256, lower-case hex
  std::string init;                           // a model.init base: its mapping as JSON and the seed

  bool empty() const { return path.empty() && init.empty(); }
};

// The weight files model.path's loader reads (model.safetensors, or the shards an index names),
// each hashed once per job: file i by rank i % size, the sums then shared by every rank. A file
// that the folder's SHA256SUMS lists with another checksum is an error naming it (on every rank).
BaseWeights hash_base_weights(const std::string& path, Communicator& host);
// One process alone (an export).
BaseWeights hash_base_weights(const std::string& path);

// A model.init base: made again from its mapping and train.seed.
BaseWeights init_base(const std::string& init_json, int64_t seed);

nlohmann::json base_json(const BaseWeights& base);
// `where` names the file in errors.
BaseWeights base_from_json(const nlohmann::json& j, const std::string& where);

// Throws when `now` is not the base `saved` (recorded in `checkpoint`) was: another file set, a
// file whose checksum differs (named), another model.init or seed. A base that moved (same files,
// another path) is logged. A checkpoint that records no base (written before bases were recorded)
// is warned about and let through.
void check_same_base(const BaseWeights& saved, const BaseWeights& now, const std::string& checkpoint);

}  // namespace tessera::checkpoint
