#include "io/tokenizer/pattern.h"

namespace tessera::tok {

Pattern::Pattern(const JsonView& j) {
  if (auto s = j.find("String")) {
    literal_ = s->str();
  } else if (auto r = j.find("Regex")) {
    regex_ = with_context(r->path(), [&] { return std::make_shared<const Regex>(r->str()); });
  } else {
    fail("{}: pattern must have a 'String' or 'Regex' key", j.path());
  }
}

Pattern Pattern::literal(std::string s) {
  Pattern p;
  p.literal_ = std::move(s);
  return p;
}

void Pattern::find_all(std::string_view text, std::vector<Span>& out) const {
  if (regex_)
    regex_->find_all(text, out);
  else
    find_all_literal(text, literal_, out);
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  thread_local std::vector<Span> spans;
  spans.clear();
  find_all(text, spans);
  if (spans.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (auto [b, e] : spans) {
    out.append(text.substr(prev, b - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

}  // namespace tessera::tok
