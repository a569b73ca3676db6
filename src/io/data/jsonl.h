// JSONL records: one JSON object per line, checked field by field. Every error names `where`
// ("train.jsonl:17") and says what is wrong with the line.
#pragma once

#include <string>
#include <string_view>

#include "io/data/example.h"

namespace tessera::data {

// The line's fields for `format`; throws tessera::Error on invalid JSON, invalid UTF-8, a missing
// field or a field of the wrong type.
Example parse_jsonl_line(std::string_view line, Format format, const std::string& where);

// The format the line's keys imply: "messages" -> chat, "prompt" and "completion" -> completion,
// "text" -> text. Throws like parse_jsonl_line when the line is bad or has none of these keys.
Format detect_format(std::string_view line, const std::string& where);

// Lines with nothing but whitespace are not records (a trailing newline is common).
bool is_blank(std::string_view line);

}  // namespace tessera::data
