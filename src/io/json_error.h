// A JSON parse error as one short line: nlohmann's message quotes the whole token it last read
// ("last read: '...'"), which for a string without its closing quote is the rest of the input
// (megabytes). This keeps the position and the reason and quotes at most a short excerpt.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace tessera {

// "line 1, column 5: syntax error while parsing value - invalid literal, near '{"a": tru'".
// `text` is the input (for the excerpt before the error); without it no excerpt is quoted.
std::string json_parse_message(const nlohmann::json::exception& e, std::string_view text = {});

}  // namespace tessera
