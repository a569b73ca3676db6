#include "engine/inference/prompt_files.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"

namespace tessera::inference {

std::vector<std::vector<int32_t>> read_input_ids(const std::string& path) {
  return with_context(path, [&] {
    SafetensorsFile file = SafetensorsFile::open(path);
    TS_CHECK(file.contains("input_ids"), "no tensor named input_ids");
    const Tensor ids = file.tensor("input_ids").clone();
    TS_CHECK(ids.ndim() == 2 && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32) && ids.size(0) > 0 &&
                 ids.size(1) > 0,
             "input_ids must be int64 or int32 [batch, prompt] with at least one token, got {}", ids.str());
    std::vector<std::vector<int32_t>> rows(ids.size(0));
    for (int64_t b = 0; b < ids.size(0); ++b)
      for (int64_t t = 0; t < ids.size(1); ++t) {
        const int64_t i = b * ids.size(1) + t;
        const int64_t v = ids.dtype() == DType::I64 ? ids.data_as<int64_t>()[i] : ids.data_as<int32_t>()[i];
        TS_CHECK(v >= 0 && v <= INT32_MAX, "input_ids[{}, {}] = {} is not a token id", b, t, v);
        rows[b].push_back(static_cast<int32_t>(v));
      }
    return rows;
  });
}

std::vector<std::vector<int32_t>> read_jsonl_prompts(const std::string& path, const data::DocumentEncoder& encoder,
                                                     bool chat) {
  std::ifstream in(path);
  TS_CHECK(in, "--input {}: cannot open the file", path);
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    TS_CHECK(!j.is_discarded(), "{}:{}: not valid JSON (or not valid UTF-8)", path, n);
    TS_CHECK(j.is_object(), "{}:{}: expected a JSON object, got {}", path, n, j.type_name());
    if (j.contains("messages")) {
      const nlohmann::json& list = j.at("messages");
      TS_CHECK(list.is_array() && !list.empty(), "{}:{}: messages must be a non-empty list", path, n);
      std::vector<data::Message> messages;
      for (const auto& m : list) {
        TS_CHECK(m.is_object() && m.contains("role") && m.at("role").is_string() && m.contains("content") &&
                     m.at("content").is_string(),
                 "{}:{}: each message needs string role and content", path, n);
        messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
      }
      prompts.push_back(with_context(fmt::format("{}:{}", path, n), [&] { return encoder.chat_prompt(messages); }));
    } else {
      TS_CHECK(j.contains("prompt") && j.at("prompt").is_string(), "{}:{}: needs \"prompt\" (a string) or \"messages\"",
               path, n);
      const std::string text = j.at("prompt").get<std::string>();
      prompts.push_back(with_context(fmt::format("{}:{}", path, n), [&] {
        return chat ? encoder.chat_prompt({{"user", text}}) : encoder.prompt(text);
      }));
    }
  }
  TS_CHECK(!prompts.empty(), "--input {}: no prompts", path);
  return prompts;
}

}  // namespace tessera::inference
