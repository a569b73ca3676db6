// Reads one data file, tokenizes its documents on every core and packs them in file order.
//  - `.jsonl` files: one record a line in data.format (auto: the first valid line's keys decide);
//    blank lines are ignored.
//  - any other file: plain UTF-8 text, the whole file one document (data.format auto or text).
// A bad line stops with its error (file:line: what), or with data.skip_bad_lines is counted and
// skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/data/data_options.h"
#include "io/data/example.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::data {

class Progress;

struct PackStats {
  Format format = Format::text;
  int64_t documents = 0, bad_lines = 0, targets = 0;
  std::string first_bad;  // the first skipped line's error
};

// Calls `sink` with complete records (see sequence.h) as they are packed, the padded last row
// included.
PackStats pack_file(const std::string& path, const DataOptions& data, const tok::Tokenizer& tokenizer,
                    const std::function<void(std::vector<int32_t>&&)>& sink, Progress* progress = nullptr);

}  // namespace tessera::data
