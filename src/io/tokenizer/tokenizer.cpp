#include "io/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/json_error.h"
#include "io/tokenizer/tokenizer_data.h"
#include "io/tokenizer/utf8.h"

namespace tessera::tok {

namespace {

// The byte tokenizer's special tokens follow the 256 byte ids.
constexpr int32_t kByteBos = 256;
const char* const kByteSpecials[] = {"<bos>", "<eos>", "<pad>"};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open file", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `written_id`: the id the file gives (checked, but assigned as `tokenizers` does; see below).
AddedToken parse_added_token(const JsonView& j, int32_t& written_id) {
  AddedToken t;
  written_id = j.at("id").id();
  t.content = j.at("content").str();
  if (t.content.empty()) fail("{}.content: empty added token", j.path());
  t.special = j.bool_or("special", false);
  t.lstrip = j.bool_or("lstrip", false);
  t.rstrip = j.bool_or("rstrip", false);
  t.single_word = j.bool_or("single_word", false);
  t.normalized = j.bool_or("normalized", !t.special);
  return t;
}

void load_tokenizer_json(TokenizerData& d, const nlohmann::json& j) {
  JsonView root(j, "");
  if (!root.is_object()) fail("expected a JSON object at the top");
  // Both change what encode() returns; rather than silently ignore them, refuse the file.
  if (root.find("truncation")) fail("truncation is not supported (set \"truncation\": null)");
  if (root.find("padding")) fail("padding is not supported (set \"padding\": null)");

  JsonView model = root.at("model");
  std::string type = model.str_or("type", "BPE");
  if (type != "BPE") fail("unsupported model type '{}' at model.type", type);
  d.model = std::make_unique<Bpe>(model);
  if (auto n = root.find("normalizer")) d.normalizer = make_normalizer(*n);
  if (auto p = root.find("pre_tokenizer")) d.pre_tokenizer = make_pre_tokenizer(*p);
  if (auto p = root.find("post_processor")) d.post_processor = make_post_processor(*p);
  if (auto dec = root.find("decoder")) d.decoder = make_decoder(*dec);

  d.vocab_size = static_cast<int32_t>(d.model->tokens().size());
  if (auto added = root.find("added_tokens")) {
    // `tokenizers` does not take the ids written here: it adds the tokens in order, each with its
    // id in the model's vocabulary or else the next id after the vocabulary. Do the same.
    const auto model_size = static_cast<int32_t>(d.model->vocab_entries());
    std::optional<int32_t> max_id;
    const std::vector<std::string>& vocab = d.model->tokens();
    for (const auto& item : added->items()) {
      int32_t written_id = 0;
      AddedToken t = parse_added_token(item, written_id);
      // An id the vocabulary gives to another token: the file contradicts itself.
      if (static_cast<size_t>(written_id) < vocab.size() && d.model->token_to_id(vocab[written_id]) == written_id &&
          vocab[written_id] != t.content)
        fail("{}: added token '{}' has id {}, which the vocabulary gives to '{}'", item.path(), t.content,
             written_id, vocab[written_id]);
      if (auto it = d.added_by_content.find(t.content); it != d.added_by_content.end()) {
        t.id = it->second;  // listed twice: the later flags win
        d.added[d.added_by_id.at(t.id)] = t;
        continue;
      }
      if (auto id = d.model->token_to_id(t.content))
        t.id = *id;
      else
        t.id = !max_id ? model_size : (*max_id >= model_size || model_size == 0 ? *max_id + 1 : model_size);
      max_id = std::max(max_id.value_or(t.id), t.id);
      d.added_by_id[t.id] = d.added.size();
      d.added_by_content[t.content] = t.id;
      d.vocab_size = std::max(d.vocab_size, t.id + 1);
      d.added.push_back(std::move(t));
    }
  }
  for (const AddedToken& t : d.added) {
    if (t.normalized) {
      std::string pattern = t.content;
      if (d.normalizer) d.normalizer->apply(pattern);
      d.normalized_matcher.add(t, std::move(pattern));
    } else {
      d.raw_matcher.add(t, t.content);
    }
  }
}

// Normalizes, pre-tokenizes and encodes one stretch of text that holds no raw added token.
void encode_text(const TokenizerData& d, std::string_view text, bool at_start, std::vector<int32_t>& ids) {
  std::string normalized(text);
  if (d.normalizer) d.normalizer->apply(normalized);
  std::vector<TextSegment> segs;
  if (d.normalized_matcher.empty())
    segs.push_back({0, normalized.size(), -1});
  else
    d.normalized_matcher.split(normalized, segs);
  std::vector<Piece> pieces;
  for (const TextSegment& s : segs) {
    if (s.id >= 0) {
      ids.push_back(s.id);
      continue;
    }
    pieces.clear();
    pieces.push_back({normalized.substr(s.begin, s.end - s.begin), at_start && s.begin == 0});
    if (d.pre_tokenizer) d.pre_tokenizer->apply(pieces);
    for (const Piece& p : pieces) d.model->encode(p.text, ids);
  }
}

std::vector<int32_t> encode_ids(const TokenizerData& d, std::string_view text) {
  std::vector<int32_t> ids;
  if (d.byte_tokenizer) {
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) fail("{}: encode: text is not valid UTF-8 at byte {}", d.name, bad);
  std::vector<TextSegment> segs;
  d.raw_matcher.split(text, segs);
  for (const TextSegment& s : segs) {
    if (s.id >= 0)
      ids.push_back(s.id);
    else
      encode_text(d, text.substr(s.begin, s.end - s.begin), s.begin == 0, ids);
  }
  return ids;
}

std::vector<int32_t> post_process(const TokenizerData& d, Encodings enc, bool add_special_tokens) {
  if (d.byte_tokenizer) {
    if (add_special_tokens)
      for (auto& e : enc) e.insert(e.begin(), kByteBos);
  } else if (d.post_processor) {
    d.post_processor->apply(enc, add_special_tokens);
  }
  std::vector<int32_t> out;
  for (const auto& e : enc) out.insert(out.end(), e.begin(), e.end());
  return out;
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path file = fs::is_directory(path) ? fs::path(path) / "tokenizer.json" : fs::path(path);
  std::string config;
  fs::path config_file = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(config_file)) config = read_file(config_file);
  std::string text = read_file(file);
  return from_json(text, config, file.string());
}

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json, const std::string& config_json,
                               const std::string& name) {
  auto d = std::make_shared<TokenizerData>();
  d->name = name;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(tokenizer_json);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", name, json_parse_message(e, tokenizer_json));
  }
  with_context(name, [&] { load_tokenizer_json(*d, j); });
  if (!config_json.empty()) {
    std::string config_name = (std::filesystem::path(name).parent_path() / "tokenizer_config.json").string();
    load_tokenizer_config(*d, config_json, config_name);
  }
  return Tokenizer(std::move(d));
}

Tokenizer Tokenizer::bytes() {
  auto d = std::make_shared<TokenizerData>();
  d->name = "byte tokenizer";
  d->byte_tokenizer = true;
  d->vocab_size = 259;
  for (int k = 0; k < 3; ++k) {
    AddedToken t{kByteSpecials[k], kByteBos + k, true};
    d->added_by_id[t.id] = d->added.size();
    d->added_by_content[t.content] = t.id;
    d->added.push_back(t);
  }
  d->bos_token = kByteSpecials[0];
  d->eos_token = kByteSpecials[1];
  d->pad_token = kByteSpecials[2];
  d->add_bos = true;
  d->add_eos = false;
  return Tokenizer(std::move(d));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  Encodings enc;
  enc.push_back(encode_ids(*data_, text));
  return post_process(*data_, std::move(enc), add_special_tokens);
}

std::vector<int32_t> Tokenizer::encode_pair(std::string_view a, std::string_view b, bool add_special_tokens) const {
  Encodings enc;
  enc.push_back(encode_ids(*data_, a));
  enc.push_back(encode_ids(*data_, b));
  return post_process(*data_, std::move(enc), add_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const TokenizerData& d = *data_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  std::string bytes;  // the byte tokenizer's output
  for (size_t k = 0; k < ids.size(); ++k) {
    int32_t id = ids[k];
    if (id < 0 || id >= d.vocab_size)
      fail("{}: decode: token id {} at position {} is out of range (vocab size {})", d.name, id, k, d.vocab_size);
    if (auto it = d.added_by_id.find(id); it != d.added_by_id.end()) {
      const AddedToken& t = d.added[it->second];
      if (skip_special_tokens && t.special) continue;
      if (d.byte_tokenizer)
        bytes += t.content;
      else
        tokens.push_back(t.content);
    } else if (d.byte_tokenizer) {
      bytes += static_cast<char>(id);
    } else {
      const auto& vocab = d.model->tokens();
      if (static_cast<size_t>(id) >= vocab.size() || vocab[id].empty())
        fail("{}: decode: token id {} at position {} is not in the vocabulary", d.name, id, k);
      tokens.push_back(vocab[id]);
    }
  }
  if (d.byte_tokenizer) return utf8_lossy(bytes);
  if (d.decoder) d.decoder->apply(tokens);
  // Without a decoder `tokenizers` joins the tokens with spaces.
  const std::string_view sep = d.decoder ? "" : " ";
  std::string out;
  for (size_t k = 0; k < tokens.size(); ++k) {
    if (k > 0) out += sep;
    out += tokens[k];
  }
  return out;
}

int32_t Tokenizer::vocab_size() const { return data_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = data_->added_by_content.find(token); it != data_->added_by_content.end()) return it->second;
  if (data_->byte_tokenizer) return std::nullopt;
  return data_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (auto it = data_->added_by_id.find(id); it != data_->added_by_id.end()) return data_->added[it->second].content;
  if (data_->byte_tokenizer) {
    if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
    return std::nullopt;
  }
  const auto& vocab = data_->model->tokens();
  if (id < 0 || static_cast<size_t>(id) >= vocab.size() || vocab[id].empty()) return std::nullopt;
  return vocab[id];
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return data_->bos_token ? token_to_id(*data_->bos_token) : std::nullopt;
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return data_->eos_token ? token_to_id(*data_->eos_token) : std::nullopt;
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return data_->pad_token ? token_to_id(*data_->pad_token) : std::nullopt;
}
std::optional<bool> Tokenizer::add_bos_token() const { return data_->add_bos; }
std::optional<bool> Tokenizer::add_eos_token() const { return data_->add_eos; }
std::string Tokenizer::chat_template() const { return data_->chat_template; }

}  // namespace tessera::tok
