#include "io/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <functional>

#include "io/tokenizer/pattern.h"
#include "io/tokenizer/utf8.h"

namespace tessera::tok {

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const JsonView& j) {
  const std::string& s = j.str();
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail("unsupported split behavior '{}' at {}", s, j.path());
}

struct Segment {
  size_t begin, end;
  bool is_match;
};

using FindFn = std::function<void(std::string_view, std::vector<Span>&)>;

// Cuts every piece at the matches of find, then groups matches and gaps as behavior says
// (the same grouping rules as `tokenizers`' SplitDelimiterBehavior).
void split_pieces(std::vector<Piece>& pieces, Behavior behavior, bool invert, const FindFn& find) {
  thread_local std::vector<Span> spans;
  thread_local std::vector<Segment> segs, grouped;
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (Piece& piece : pieces) {
    const std::string& text = piece.text;
    spans.clear();
    find(text, spans);
    segs.clear();
    size_t prev = 0;
    for (auto [b, e] : spans) {
      if (b > prev) segs.push_back({prev, b, invert});
      segs.push_back({b, e, !invert});
      prev = e;
    }
    if (prev < text.size()) segs.push_back({prev, text.size(), invert});

    grouped.clear();
    bool prev_match = false;
    switch (behavior) {
      case Behavior::Isolated:
        grouped = segs;
        break;
      case Behavior::Removed:
        for (const auto& s : segs)
          if (!s.is_match) grouped.push_back(s);
        break;
      case Behavior::MergedWithPrevious:
        for (const auto& s : segs) {
          if (s.is_match && !prev_match && !grouped.empty())
            grouped.back().end = s.end;
          else
            grouped.push_back(s);
          prev_match = s.is_match;
        }
        break;
      case Behavior::MergedWithNext:
        for (size_t k = segs.size(); k-- > 0;) {
          const auto& s = segs[k];
          if (s.is_match && !prev_match && !grouped.empty())
            grouped.back().begin = s.begin;
          else
            grouped.push_back(s);
          prev_match = s.is_match;
        }
        std::reverse(grouped.begin(), grouped.end());
        break;
      case Behavior::Contiguous:
        for (const auto& s : segs) {
          if (s.is_match == prev_match && !grouped.empty())
            grouped.back().end = s.end;
          else
            grouped.push_back(s);
          prev_match = s.is_match;
        }
        break;
    }
    if (grouped.size() == 1 && grouped[0].begin == 0 && grouped[0].end == text.size()) {
      out.push_back(std::move(piece));  // nothing to cut
      continue;
    }
    for (const auto& g : grouped)
      if (g.end > g.begin) out.push_back({text.substr(g.begin, g.end - g.begin), piece.at_start && g.begin == 0});
  }
  pieces.swap(out);
}

class Split : public PreTokenizer {
 public:
  explicit Split(const JsonView& j)
      : pattern_(j.at("pattern")), behavior_(parse_behavior(j.at("behavior"))), invert_(j.bool_or("invert", false)) {}
  void apply(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, behavior_, invert_, [this](std::string_view t, std::vector<Span>& o) { pattern_.find_all(t, o); });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// The GPT-2 pattern that ByteLevel applies when use_regex is true.
const Regex& gpt2_regex() {
  static const Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return re;
}

class ByteLevel : public PreTokenizer {
 public:
  explicit ByteLevel(const JsonView& j)
      : add_prefix_space_(j.bool_or("add_prefix_space", true)), use_regex_(j.bool_or("use_regex", true)) {}
  void apply(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_)
      for (Piece& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
    if (use_regex_)
      split_pieces(pieces, Behavior::Isolated, false,
                   [](std::string_view t, std::vector<Span>& o) { gpt2_regex().find_all(t, o); });
    std::string mapped;
    for (Piece& p : pieces) {
      mapped.clear();
      for (unsigned char c : p.text) mapped += byte_to_unicode(c);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(const JsonView& j) : individual_(j.bool_or("individual_digits", false)) {}
  void apply(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, individual_ ? Behavior::Isolated : Behavior::Contiguous, false,
                 [](std::string_view t, std::vector<Span>& o) {
                   for (size_t i = 0; i < t.size();) {
                     size_t b = i;
                     if (is_numeric(next_code_point(t, i))) o.emplace_back(b, i);
                   }
                 });
  }

 private:
  bool individual_;
};

class Metaspace : public PreTokenizer {
 public:
  explicit Metaspace(const JsonView& j) : split_(j.bool_or("split", true)) {
    replacement_ = j.str_or("replacement", "\xE2\x96\x81");
    size_t i = 0;
    if (replacement_.empty() || (next_code_point(replacement_, i), i != replacement_.size()))
      fail("{}.replacement: must be one character", j.path());
    if (auto scheme = j.find("prepend_scheme")) {
      const std::string& s = scheme->str();
      if (s == "always") prepend_ = Prepend::Always;
      else if (s == "first") prepend_ = Prepend::First;
      else if (s == "never") prepend_ = Prepend::Never;
      else fail("unsupported prepend_scheme '{}' at {}", s, scheme->path());
    } else {
      // Files written before prepend_scheme existed carry add_prefix_space instead.
      prepend_ = j.bool_or("add_prefix_space", true) ? Prepend::Always : Prepend::Never;
    }
  }
  void apply(std::vector<Piece>& pieces) const override {
    static const Pattern space = Pattern::literal(" ");
    for (Piece& p : pieces) {
      p.text = space.replace_all(p.text, replacement_);
      bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (prepend_ == Prepend::Always || (prepend_ == Prepend::First && p.at_start)))
        p.text.insert(0, replacement_);
    }
    if (split_)
      split_pieces(pieces, Behavior::MergedWithNext, false,
                   [this](std::string_view t, std::vector<Span>& o) { find_all_literal(t, replacement_, o); });
  }

 private:
  enum class Prepend { Always, First, Never };
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& s : steps_) s->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonView& j) {
  const std::string type = j.type();
  if (type == "Split") return std::make_unique<Split>(j);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j);
  if (type == "Digits") return std::make_unique<Digits>(j);
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& item : j.at("pretokenizers").items()) steps.push_back(make_pre_tokenizer(item));
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail("unsupported pre_tokenizer type '{}' at {}", type, j.path());
}

}  // namespace tessera::tok
