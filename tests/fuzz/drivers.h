// One fuzz driver per parser of outside input: its seed inputs (from tests/data, configs/, or
// built here) and one parse of a candidate, which may throw the parser's clean error
// (tessera::Error, or ApiError for HTTP bodies) and nothing else, never crash and never hang.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace tessera::fuzz {

struct Driver {
  std::string name;
  std::string parses;  // what, in words
  // The seed corpus; `scratch` is a folder the driver may write seeds into.
  std::function<std::vector<std::string>(const std::string& scratch)> seeds;
  // Parses `input` (files go under `scratch`) and uses what it got, so that lazy reads run too.
  std::function<void(const std::string& input, const std::string& scratch)> parse;
  // True when `e` is this parser's clean rejection (tessera::Error for all of them).
  std::function<bool(const std::exception& e)> clean_error;
};

const std::vector<Driver>& drivers();

// The drivers of drivers_model_files.cpp (PEFT adapters, quantized checkpoints, SHA256SUMS and
// serve checksums, GGUF tokenizer metadata) and drivers_text_files.cpp (JSONL data and prompts,
// --input-ids, chat messages and templates, API keys files).
void add_model_file_drivers(std::vector<Driver>& drivers);
void add_text_file_drivers(std::vector<Driver>& drivers);

}  // namespace tessera::fuzz
