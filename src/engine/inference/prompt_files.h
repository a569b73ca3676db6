// The prompt files of `tessera generate`: --input FILE.jsonl ({"prompt": text} or {"messages":
// [{"role", "content"}...]} per line) and --input-ids FILE.safetensors (input_ids int64/int32
// [batch, prompt]). Both are outside files: anything else is one error naming the file (and line,
// or element), never a crash.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/data/document.h"

namespace tessera::inference {

// The rows of input_ids in `path`.
std::vector<std::vector<int32_t>> read_input_ids(const std::string& path);

// The prompts of the JSONL file `path`, encoded by `encoder` (chat: a plain prompt is wrapped as one
// user turn; messages always get the chat template).
std::vector<std::vector<int32_t>> read_jsonl_prompts(const std::string& path, const data::DocumentEncoder& encoder,
                                                     bool chat);

}  // namespace tessera::inference
