// What to read and how to pack it: the data section of a job (engine/config/job_config.h reads it
// from YAML as DataOptions; this layer knows no YAML).
#pragma once

#include <cstdint>
#include <string>

namespace tessera::data {

struct DataOptions {
  std::string train;
  std::string eval;
  std::string format = "auto";  // auto | text | completion | chat
  int64_t seq_len = 512;
  std::string chat_template;    // chatml | qwen3 | llama3 | deepseek; default: the tokenizer's
  bool skip_bad_lines = false;
};

}  // namespace tessera::data
