#include "io/tokenizer/tokenizer_data.h"

namespace tessera::tok {

namespace {

// bos_token and friends are a string or an AddedToken object {"content": ...}, or null.
std::optional<std::string> token_string(const JsonView& config, const std::string& key) {
  auto v = config.find(key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->str();
  return v->at("content").str();
}

std::optional<bool> flag(const JsonView& config, const std::string& key) {
  auto v = config.find(key);
  if (!v) return std::nullopt;
  return v->boolean();
}

}  // namespace

void load_tokenizer_config(TokenizerData& data, const std::string& config_json, const std::string& name) {
  nlohmann::json j = nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded()) fail("{}: not valid JSON", name);
  JsonView config(j, name);
  if (!config.is_object()) fail("{}: expected a JSON object", name);
  data.bos_token = token_string(config, "bos_token");
  data.eos_token = token_string(config, "eos_token");
  data.pad_token = token_string(config, "pad_token");
  data.add_bos = flag(config, "add_bos_token");
  data.add_eos = flag(config, "add_eos_token");
  if (auto t = config.find("chat_template")) {
    if (t->is_string()) {
      data.chat_template = t->str();
    } else {
      // A list of named templates: the one called "default", else the first.
      auto all = t->items();
      for (const auto& named : all)
        if (named.at("name").str() == "default") data.chat_template = named.at("template").str();
      if (data.chat_template.empty() && !all.empty()) data.chat_template = all[0].at("template").str();
    }
  }
}

}  // namespace tessera::tok
