// Post-processors of tokenizer.json ("post_processor"): TemplateProcessing, ByteLevel (ids
// unchanged), Sequence. They add the special tokens around one or two encoded texts.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "io/tokenizer/json_view.h"

namespace tessera::tok {

using Encodings = std::vector<std::vector<int32_t>>;  // one per input text (one or two)

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void apply(Encodings& encodings, bool add_special_tokens) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const JsonView& j);

}  // namespace tessera::tok
