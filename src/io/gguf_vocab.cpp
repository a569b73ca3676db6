#include "io/gguf_vocab.h"

#include <filesystem>
#include <fstream>
#include <algorithm>

#include "core/error.h"
#include "io/tokenizer/json_view.h"
#include "io/tokenizer/tokenizer.h"
#include "io/tokenizer/utf8.h"

namespace tessera::gguf {

namespace fs = std::filesystem;
using tok::JsonView;

namespace {

// The pre-tokenizers llama.cpp knows by name, as tokenizer.json writes them: the Split regexes in
// order, then ByteLevel (with its own GPT-2 regex only for gpt-2).
struct KnownPreTokenizer {
  const char* name;
  std::vector<std::string> splits;
  bool byte_level_regex;
  bool ignore_merges;  // llama.cpp looks whole pre-tokens up before merging (llama-bpe)
};

const std::vector<KnownPreTokenizer>& known_pre_tokenizers() {
  static const std::vector<KnownPreTokenizer> known = {
      {"llama-bpe",
       {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       false, true},
      {"qwen2",
       {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       false, false},
      {"deepseek-v3",
       {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
        "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
       false, false},
      {"gpt-2", {}, true, false},
  };
  return known;
}

std::string recognise_pre_tokenizer(const JsonView& root) {
  const std::string where = root.path() + ": pre_tokenizer";
  auto pre = root.find("pre_tokenizer");
  TS_CHECK(pre.has_value(), "{} is missing: GGUF export needs a byte-level BPE tokenizer", where);
  std::vector<JsonView> steps = pre->type() == "Sequence" ? pre->at("pretokenizers").items() : std::vector{*pre};
  std::vector<std::string> splits;
  std::optional<bool> byte_level_regex;
  for (const JsonView& step : steps) {
    const std::string type = step.type();
    TS_CHECK(!byte_level_regex, "{}: {} after ByteLevel is not a pre-tokenizer llama.cpp knows", where, type);
    if (type == "ByteLevel") {
      byte_level_regex = step.bool_or("use_regex", true);
    } else if (type == "Split" && step.at("pattern").find("Regex")) {
      splits.push_back(step.at("pattern").at("Regex").str());
    } else {
      fail("{}: a {} step is not part of a pre-tokenizer llama.cpp knows", where, type);
    }
  }
  TS_CHECK(byte_level_regex.has_value(), "{} has no ByteLevel step: only byte-level BPE tokenizers export to GGUF",
           where);
  for (const KnownPreTokenizer& k : known_pre_tokenizers())
    if (k.splits == splits && k.byte_level_regex == *byte_level_regex) return k.name;
  fail("{} is not one llama.cpp knows by name (recognised: llama-bpe, qwen2, deepseek-v3, gpt-2)", where);
}

// What llama.cpp's converter treats as a control token even when tokenizer.json does not mark it
// special: <|...|> and DeepSeek's <｜...｜>.
bool looks_special(const std::string& t) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.starts_with(open) && t.ends_with(close);
  };
  return wrapped("<|", "|>") || wrapped("<｜", "｜>");
}

std::string merge_text(const JsonView& merge) {
  if (merge.is_string()) return merge.str();
  const auto parts = merge.items();
  TS_CHECK(parts.size() == 2, "{}: a merge is two tokens", merge.path());
  for (const JsonView& p : parts)
    TS_CHECK(p.str().find(' ') == std::string::npos, "{}: token '{}' contains a space, which GGUF merges cannot hold",
             merge.path(), p.str());
  return parts[0].str() + " " + parts[1].str();
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TS_CHECK(in, "{}: cannot open", path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  TS_CHECK(!j.is_discarded(), "{}: not valid JSON", path);
  return j;
}

void set_token(Vocab& v, int32_t id, std::string text, TokenType type, const std::string& where) {
  TS_CHECK(id < static_cast<int64_t>(v.tokens.size()), "{}: token id {} is past the model's vocab_size {}", where, id,
           v.tokens.size());
  v.tokens[id] = std::move(text);
  v.token_types[id] = static_cast<int32_t>(type);
}

// The ids left unused by the tokenizer become [PAD<id>] placeholders.
Vocab placeholder_vocab(int64_t vocab_size) {
  Vocab v;
  v.tokens.resize(vocab_size);
  v.token_types.assign(vocab_size, static_cast<int32_t>(TokenType::Unused));
  for (int64_t id = 0; id < vocab_size; ++id) v.tokens[id] = "[PAD" + std::to_string(id) + "]";
  return v;
}

}  // namespace

Vocab vocab_from_tokenizer(const std::string& path, int64_t vocab_size, std::optional<int32_t> default_bos,
                           std::optional<int32_t> default_eos) {
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "tokenizer.json").string() : path;
  const nlohmann::json j = read_json(file);
  const JsonView root(j, file);
  TS_CHECK(root.is_object(), "{}: expected a JSON object", file);
  const JsonView model = root.at("model");
  TS_CHECK(model.type() == "BPE", "{}: model.type is {}: only byte-level BPE tokenizers export to GGUF", file,
           model.type());

  Vocab v = placeholder_vocab(vocab_size);
  v.pre = recognise_pre_tokenizer(root);
  const JsonView entries = model.at("vocab");
  TS_CHECK(entries.is_object(), "{}: expected an object of token -> id", entries.path());
  for (auto it = entries.raw().begin(); it != entries.raw().end(); ++it)
    set_token(v, JsonView(*it, entries.path() + "." + it.key()).id(), it.key(), TokenType::Normal, file);
  if (auto added = root.find("added_tokens"))
    for (const JsonView& t : added->items()) {
      const std::string& content = t.at("content").str();
      const bool control = t.bool_or("special", false) || looks_special(content);
      set_token(v, t.at("id").id(), content, control ? TokenType::Control : TokenType::UserDefined, file);
    }
  if (auto merges = model.find("merges")) {
    const auto items = merges->items();
    v.merges.reserve(items.size());
    for (const JsonView& m : items) v.merges.push_back(merge_text(m));
  }

  const tok::Tokenizer tokenizer = tok::Tokenizer::from_file(path);
  v.bos = tokenizer.bos_id() ? tokenizer.bos_id() : default_bos;
  v.eos = tokenizer.eos_id() ? tokenizer.eos_id() : default_eos;
  v.pad = tokenizer.pad_id();
  const std::vector<int32_t> probe = tokenizer.encode("a", /*add_special_tokens=*/true);
  v.add_bos = tokenizer.add_bos_token().value_or(v.bos && !probe.empty() && probe.front() == *v.bos);
  v.add_eos = tokenizer.add_eos_token().value_or(false);
  v.chat_template = tokenizer.chat_template();
  for (const auto& id : {v.bos, v.eos, v.pad})
    TS_CHECK(!id || (*id >= 0 && *id < vocab_size), "{}: special token id {} is outside the model's vocab_size {}",
             file, *id, vocab_size);
  return v;
}

Vocab byte_vocab(int64_t vocab_size) {
  const tok::Tokenizer bytes = tok::Tokenizer::bytes();
  TS_CHECK(vocab_size >= bytes.vocab_size(), "the byte tokenizer needs vocab_size >= {}, the model has {}",
           bytes.vocab_size(), vocab_size);
  Vocab v = placeholder_vocab(vocab_size);
  v.pre = "default";
  for (int b = 0; b < 256; ++b) set_token(v, b, tok::byte_to_unicode(static_cast<unsigned char>(b)), TokenType::Normal, "");
  for (int32_t id = 256; id < bytes.vocab_size(); ++id) set_token(v, id, *bytes.id_to_token(id), TokenType::Control, "");
  v.bos = bytes.bos_id();
  v.eos = bytes.eos_id();
  v.pad = bytes.pad_id();
  v.add_bos = bytes.add_bos_token().value_or(true);
  return v;
}

void add_vocab_metadata(const Vocab& v, Metadata& m) {
  m.emplace_back("tokenizer.ggml.model", Value::string("gpt2"));
  m.emplace_back("tokenizer.ggml.pre", Value::string(v.pre));
  m.emplace_back("tokenizer.ggml.tokens", Value::strings(v.tokens));
  m.emplace_back("tokenizer.ggml.token_type", Value::i32s(v.token_types));
  m.emplace_back("tokenizer.ggml.merges", Value::strings(v.merges));
  if (v.bos) m.emplace_back("tokenizer.ggml.bos_token_id", Value::u32(static_cast<uint32_t>(*v.bos)));
  if (v.eos) m.emplace_back("tokenizer.ggml.eos_token_id", Value::u32(static_cast<uint32_t>(*v.eos)));
  if (v.pad) m.emplace_back("tokenizer.ggml.padding_token_id", Value::u32(static_cast<uint32_t>(*v.pad)));
  m.emplace_back("tokenizer.ggml.add_bos_token", Value::boolean(v.add_bos));
  m.emplace_back("tokenizer.ggml.add_eos_token", Value::boolean(v.add_eos));
  if (!v.chat_template.empty()) m.emplace_back("tokenizer.chat_template", Value::string(v.chat_template));
}

Vocab vocab_from_gguf(const File& file) {
  return with_context(file.path(), [&] {
    const std::string model = file.at("tokenizer.ggml.model").as_string();
    TS_CHECK(model == "gpt2", "tokenizer.ggml.model is '{}': Tessera reads byte-level BPE (gpt2) vocabularies", model);
    Vocab v;
    v.pre = file.find("tokenizer.ggml.pre") ? file.at("tokenizer.ggml.pre").as_string() : "default";
    v.tokens = file.at("tokenizer.ggml.tokens").as_strings();
    for (size_t i = 0; i < v.tokens.size(); ++i)
      TS_CHECK(tok::find_invalid_utf8(v.tokens[i]) == std::string_view::npos, "tokenizer.ggml.tokens: token {} is not valid UTF-8", i);
    for (int64_t type : file.at("tokenizer.ggml.token_type").as_ints()) {
      TS_CHECK(type >= 0 && type <= static_cast<int64_t>(TokenType::Byte), "tokenizer.ggml.token_type: {} is not a token type",
               type);
      v.token_types.push_back(static_cast<int32_t>(type));
    }
    TS_CHECK(v.token_types.size() == v.tokens.size(), "tokenizer.ggml.token_type has {} entries for {} tokens",
             v.token_types.size(), v.tokens.size());
    if (file.find("tokenizer.ggml.merges")) v.merges = file.at("tokenizer.ggml.merges").as_strings();
    for (size_t i = 0; i < v.merges.size(); ++i)
      TS_CHECK(tok::find_invalid_utf8(v.merges[i]) == std::string_view::npos, "tokenizer.ggml.merges: merge {} is not valid UTF-8", i);
    auto id = [&](const char* key) -> std::optional<int32_t> {
      const Value* value = file.find(key);
      if (!value) return std::nullopt;
      const int64_t i = value->as_int();
      TS_CHECK(i >= 0 && i < static_cast<int64_t>(v.tokens.size()), "{}: {} is not a token id", key, i);
      return static_cast<int32_t>(i);
    };
    v.bos = id("tokenizer.ggml.bos_token_id");
    v.eos = id("tokenizer.ggml.eos_token_id");
    v.pad = id("tokenizer.ggml.padding_token_id");
    auto flag = [&](const char* key) { return file.find(key) && file.at(key).as_bool(); };
    v.add_bos = flag("tokenizer.ggml.add_bos_token");
    v.add_eos = flag("tokenizer.ggml.add_eos_token");
    if (file.find("tokenizer.chat_template")) v.chat_template = file.at("tokenizer.chat_template").as_string();
    TS_CHECK(tok::find_invalid_utf8(v.chat_template) == std::string_view::npos, "tokenizer.chat_template is not valid UTF-8");
    return v;
  });
}

namespace {

bool is_byte_layout(const Vocab& v) {
  const Vocab bytes = byte_vocab(static_cast<int64_t>(std::max<size_t>(v.tokens.size(), 259)));
  return v.merges.empty() && v.tokens == bytes.tokens && v.token_types == bytes.token_types;
}

}  // namespace

tok::Tokenizer tokenizer_from_vocab(const Vocab& v, const std::string& name) {
  if (is_byte_layout(v)) return tok::Tokenizer::bytes();
  const KnownPreTokenizer* pre = nullptr;
  for (const KnownPreTokenizer& k : known_pre_tokenizers())
    if (v.pre == k.name) pre = &k;
  TS_CHECK(pre, "{}: tokenizer.ggml.pre '{}' is not a pre-tokenizer Tessera reproduces (llama-bpe, qwen2, deepseek-v3, gpt-2)",
           name, v.pre);

  using nlohmann::json;
  json steps = json::array();
  for (const std::string& regex : pre->splits)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                   {"use_regex", pre->byte_level_regex}});
  // Every used token sits in the BPE vocabulary under its id (as tokenizers wants it for added
  // tokens that must keep their ids); control and user-defined ones are also matched in the text.
  json vocab = json::object(), added = json::array();
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    const auto type = static_cast<TokenType>(v.token_types[id]);
    if (type == TokenType::Unused) continue;
    vocab[v.tokens[id]] = id;
    if (type == TokenType::Control || type == TokenType::UserDefined)
      added.push_back({{"id", id}, {"content", v.tokens[id]}, {"special", type == TokenType::Control},
                       {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}});
  }
  const json tokenizer = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", v.merges}, {"ignore_merges", pre->ignore_merges}}},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", steps}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"added_tokens", added},
  };
  json config = {{"add_bos_token", v.add_bos}, {"add_eos_token", v.add_eos}};
  if (v.bos) config["bos_token"] = v.tokens[*v.bos];
  if (v.eos) config["eos_token"] = v.tokens[*v.eos];
  if (v.pad) config["pad_token"] = v.tokens[*v.pad];
  if (!v.chat_template.empty()) config["chat_template"] = v.chat_template;
  return tok::Tokenizer::from_json(tokenizer.dump(), config.dump(), name);
}

}  // namespace tessera::gguf
