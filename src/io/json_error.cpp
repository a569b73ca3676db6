#include "io/json_error.h"

#include <algorithm>

#include "io/tokenizer/utf8.h"

namespace tessera {

namespace {

constexpr size_t kExcerptBytes = 40;

// Printable: control bytes and quotes escaped, invalid UTF-8 replaced.
std::string printable(std::string_view bytes) {
  std::string out;
  for (char c : tok::utf8_lossy(bytes)) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (static_cast<unsigned char>(c) < 0x20) out += '?';
    else out += c;
  }
  return out;
}

}  // namespace

std::string json_parse_message(const nlohmann::json::exception& e, std::string_view text) {
  std::string what = e.what();
  // Drop "[json.exception.parse_error.101] parse error at ".
  if (const size_t at = what.find("line "); at != std::string::npos) what = what.substr(at);
  std::string expected;
  if (const size_t at = what.find("; last read: '"); at != std::string::npos) {
    if (const size_t exp = what.rfind("'; expected "); exp != std::string::npos && exp >= at)
      expected = what.substr(exp + 1);  // "; expected '}'"
    what.resize(at);
  }
  what = printable(what.substr(0, 200));
  const auto* parse = dynamic_cast<const nlohmann::json::parse_error*>(&e);
  if (parse && !text.empty()) {
    const size_t end = std::min(text.size(), parse->byte);
    const size_t begin = end > kExcerptBytes ? end - kExcerptBytes : 0;
    what += ", near '" + std::string(begin > 0 ? "..." : "") + printable(text.substr(begin, end - begin)) + "'";
  }
  return what + printable(expected.substr(0, 60));
}

}  // namespace tessera
