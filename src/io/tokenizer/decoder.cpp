#include "io/tokenizer/decoder.h"

#include "io/tokenizer/pattern.h"
#include "io/tokenizer/utf8.h"

namespace tessera::tok {

namespace {

class ByteLevel : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      size_t mark = bytes.size();
      bool mapped = true;
      for (size_t i = 0; i < t.size();) {
        int b = unicode_to_byte(next_code_point(t, i));
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes += static_cast<char>(b);
      }
      // A token with characters outside the byte alphabet (an added token) is taken as it is.
      if (!mapped) bytes.replace(mark, std::string::npos, t);
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class Metaspace : public Decoder {
 public:
  explicit Metaspace(const JsonView& j) : replacement_(j.str_or("replacement", "\xE2\x96\x81")) {
    if (auto scheme = j.find("prepend_scheme"))
      strip_first_ = scheme->str() != "never";
    else
      strip_first_ = j.bool_or("add_prefix_space", true);
  }
  void apply(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      const std::string& t = tokens[k];
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, replacement_.size(), replacement_) == 0) {
          // The first token's replacement characters were added by the encoder: drop them.
          if (!(k == 0 && strip_first_)) out += ' ';
          i += replacement_.size();
        } else {
          out += t[i++];
        }
      }
      tokens[k] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ByteFallback : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      // Bytes that are not valid UTF-8 become one U+FFFD each, as in `tokenizers`.
      if (find_invalid_utf8(bytes) == std::string::npos)
        out.push_back(bytes);
      else
        for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
      bytes.clear();
    };
    for (std::string& t : tokens) {
      unsigned char b;
      if (parse_byte_token(t, b)) {
        bytes += static_cast<char>(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class Fuse : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip : public Decoder {
 public:
  explicit Strip(const JsonView& j)
      : content_(j.at("content").str()), start_(j.int_or("start", 0)), stop_(j.int_or("stop", 0)) {
    size_t i = 0;
    if (content_.empty() || (next_code_point(content_, i), i != content_.size()))
      fail("{}.content: must be one character", j.path());
  }
  void apply(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (int64_t n = 0; n < start_ && t.compare(b, content_.size(), content_) == 0; ++n) b += content_.size();
      for (int64_t n = 0; n < stop_ && e >= b + content_.size() &&
                          t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++n)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  int64_t start_, stop_;
};

class Replace : public Decoder {
 public:
  explicit Replace(const JsonView& j) : pattern_(j.at("pattern")), content_(j.at("content").str()) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->apply(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

bool parse_byte_token(const std::string& t, unsigned char& byte) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return false;
  byte = static_cast<unsigned char>(hi * 16 + lo);
  return true;
}

std::unique_ptr<Decoder> make_decoder(const JsonView& j) {
  const std::string type = j.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") return std::make_unique<Strip>(j);
  if (type == "Replace") return std::make_unique<Replace>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& item : j.at("decoders").items()) steps.push_back(make_decoder(item));
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail("unsupported decoder type '{}' at {}", type, j.path());
}

}  // namespace tessera::tok
