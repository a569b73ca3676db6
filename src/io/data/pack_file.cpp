#include "io/data/pack_file.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "io/data/document.h"
#include "io/data/jsonl.h"
#include "io/data/packer.h"
#include "io/data/progress.h"
#include "io/tokenizer/utf8.h"

namespace tessera::data {

namespace {

// Lines are read and tokenized in blocks, so memory stays bounded on large files.
constexpr size_t kBlockLines = 4096;
constexpr size_t kBlockBytes = size_t{32} << 20;

struct Line {
  int64_t number;
  std::string text;
};

// Result of one line: a document, or the error that rejects the line.
struct Parsed {
  std::optional<Document> doc;
  std::string error;
};

std::optional<Format> configured_format(const DataOptions& data) {
  if (data.format == "text") return Format::text;
  if (data.format == "completion") return Format::completion;
  if (data.format == "chat") return Format::chat;
  return std::nullopt;
}

class JsonlPacker {
 public:
  JsonlPacker(const std::string& path, const DataOptions& data, const tok::Tokenizer& tokenizer,
              const std::function<void(std::vector<int32_t>&&)>& sink)
      : path_(path), data_(data), tokenizer_(tokenizer), sink_(sink),
        packer_(data.seq_len, tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0))) {
    stats_.format = configured_format(data).value_or(Format::text);
    format_known_ = configured_format(data).has_value();
  }

  // Takes the next block of lines (in file order).
  void add_block(std::vector<Line>& lines) {
    if (!format_known_) detect(lines);
    if (!format_known_) return;  // only bad lines so far
    if (!encoder_) with_context(path_, [&] {
      const bool chat = stats_.format == Format::chat;
      encoder_.emplace(tokenizer_, stats_.format,
                       chat ? resolve_chat_template(data_.chat_template, tokenizer_) : ChatTemplate::chatml);
    });
    std::vector<Parsed> parsed = parse_parallel(lines);
    for (size_t k = 0; k < lines.size(); ++k) {
      if (!parsed[k].doc) {
        bad(parsed[k].error);
        continue;
      }
      packer_.add(*parsed[k].doc);
      ++stats_.documents;
    }
    sink_(packer_.take_rows());
  }

  PackStats finish() {
    packer_.finish();
    sink_(packer_.take_rows());
    stats_.targets = packer_.targets();
    return stats_;
  }

 private:
  std::string where(int64_t line) const { return path_ + ":" + std::to_string(line); }

  void bad(const std::string& error) {
    if (!data_.skip_bad_lines) throw Error(error);
    if (stats_.bad_lines++ == 0) stats_.first_bad = error;
  }

  // data.format auto: the first line that parses names the format; bad lines before it are
  // dropped (or stop the job) like any other bad line.
  void detect(std::vector<Line>& lines) {
    size_t k = 0;
    for (; k < lines.size() && !format_known_; ++k) {
      try {
        stats_.format = detect_format(lines[k].text, where(lines[k].number));
        format_known_ = true;
        break;
      } catch (const Error& e) {
        bad(e.what());
      }
    }
    lines.erase(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(k));
  }

  std::vector<Parsed> parse_parallel(const std::vector<Line>& lines) const {
    std::vector<Parsed> out(lines.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t k; (k = next.fetch_add(1)) < lines.size();) {
        const std::string at = where(lines[k].number);
        try {
          out[k].doc = encoder_->encode(parse_jsonl_line(lines[k].text, stats_.format, at));
        } catch (const Error& e) {
          const std::string what = e.what();
          out[k].error = what.rfind(at + ":", 0) == 0 ? what : at + ": " + what;
        }
      }
    };
    const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, lines.size());
    std::vector<std::jthread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    return out;
  }

  const std::string& path_;
  const DataOptions& data_;
  const tok::Tokenizer& tokenizer_;
  const std::function<void(std::vector<int32_t>&&)>& sink_;
  Packer packer_;
  std::optional<DocumentEncoder> encoder_;
  bool format_known_ = false;
  PackStats stats_;
};

PackStats pack_jsonl(const std::string& path, const DataOptions& data, const tok::Tokenizer& tokenizer,
                     const std::function<void(std::vector<int32_t>&&)>& sink, Progress* progress) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the data file", path);
  JsonlPacker packer(path, data, tokenizer, sink);
  int64_t number = 0, bytes = 0;
  std::string text;
  std::vector<Line> block;
  size_t block_bytes = 0;
  while (std::getline(in, text)) {
    ++number;
    bytes += static_cast<int64_t>(text.size()) + 1;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (is_blank(text)) continue;
    block_bytes += text.size();
    block.push_back({number, std::move(text)});
    if (block.size() < kBlockLines && block_bytes < kBlockBytes) continue;
    packer.add_block(block);
    block.clear();
    block_bytes = 0;
    if (progress) progress->update(bytes);
  }
  if (!block.empty()) packer.add_block(block);
  if (progress) progress->finish();
  return packer.finish();
}

PackStats pack_text(const std::string& path, const DataOptions& data, const tok::Tokenizer& tokenizer,
                    const std::function<void(std::vector<int32_t>&&)>& sink) {
  if (configured_format(data).value_or(Format::text) != Format::text)
    fail("{}: data.format {} needs a .jsonl file; plain files are one text document", path, data.format);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open the data file", path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const size_t bad = tok::find_invalid_utf8(text);
  if (bad != std::string::npos)
    fail("{}:{}: invalid UTF-8", path, 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n'));
  PackStats stats;
  const DocumentEncoder encoder =
      with_context(path, [&] { return DocumentEncoder(tokenizer, Format::text, ChatTemplate::chatml); });
  Packer packer(data.seq_len, encoder.pad_id());
  if (!is_blank(text)) {
    Example ex;
    ex.text = text;
    packer.add(with_context(path, [&] { return encoder.encode(ex); }));
    stats.documents = 1;
  }
  packer.finish();
  sink(packer.take_rows());
  stats.targets = packer.targets();
  return stats;
}

}  // namespace

PackStats pack_file(const std::string& path, const DataOptions& data, const tok::Tokenizer& tokenizer,
                    const std::function<void(std::vector<int32_t>&&)>& sink, Progress* progress) {
  if (std::filesystem::is_directory(path)) fail("{}: is a folder, expected a data file", path);
  if (std::filesystem::path(path).extension() == ".jsonl") return pack_jsonl(path, data, tokenizer, sink, progress);
  return pack_text(path, data, tokenizer, sink);
}

}  // namespace tessera::data
