// What the fuzz drivers share: reading and writing scratch files, the seed folders of tests/data,
// touching every byte of a tensor, a tiny model to build seeds from, and bundles, which carry a
// folder of several files (an adapter, a quantized checkpoint) as one input to mutate.
#pragma once

#include <cstdint>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::fuzz {

inline const std::string kData = TESSERA_TEST_DATA;
inline const std::string kSource = TESSERA_SOURCE_DIR;

std::string read(const std::filesystem::path& path);
// Writes `bytes` as dir/name and returns the path.
std::string write(const std::string& dir, const std::string& name, const std::string& bytes);
// Every file under `dir` whose name ends in `suffix`, in a fixed order (the corpus order decides the mutants).
std::vector<std::string> files(const std::string& dir, const std::string& suffix, size_t max_bytes = 1 << 20);

// Reads every byte of a tensor, so a view past the mapping would fault here.
uint64_t touch(const Tensor& t);
bool tessera_error(const std::exception& e);

// The parts joined by a separator line that mutations rarely make or break.
std::string bundle(const std::vector<std::string>& parts);
// `input`'s parts written into `folder` (emptied first) as names[0], names[1], ...: a part the
// input lacks leaves its file absent; parts past names.size() are dropped. Returns `folder`.
std::string write_bundle(const std::string& folder, const std::string& input, const std::vector<std::string>& names);

// A two-layer llama of hidden size 64 (config.json keys), and a folder holding it with small
// deterministic weights (config.json, model.safetensors) under scratch/name.
nlohmann::json tiny_model_config();
std::string tiny_model_folder(const std::string& scratch, const std::string& name);

// Runs independent parsers of one input: a tessera::Error from one step does not stop the others;
// finish() rethrows the first when no step succeeded (the input counts as rejected).
class Steps {
 public:
  template <typename Fn>
  void run(Fn&& fn) {
    try {
      fn();
      ++succeeded_;
    } catch (const std::exception& e) {
      if (!tessera_error(e)) throw;
      if (!first_) first_ = std::current_exception();
    }
  }
  void finish() const {
    if (first_ && succeeded_ == 0) std::rethrow_exception(first_);
  }

 private:
  std::exception_ptr first_;
  int succeeded_ = 0;
};

}  // namespace tessera::fuzz
