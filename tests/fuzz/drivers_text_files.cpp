// Fuzz drivers for the text and small files a user hands to a command: JSONL training, calibration
// and prompt files, --input-ids safetensors, chat messages with a tokenizer's chat template, and
// the serve API keys file.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/inference/prompt_files.h"
#include "engine/server/api_keys.h"
#include "fuzz/drivers.h"
#include "fuzz/fuzz_util.h"
#include "io/data/chat_template.h"
#include "io/data/data_loader.h"
#include "io/data/document.h"
#include "io/data/jsonl.h"
#include "io/safetensors_writer.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::fuzz {

namespace {

namespace fs = std::filesystem;

// tests/data's tiny sentencepiece-style tokenizer with the special tokens of the four chat
// templates added, so that each family's tokenizer_config.json (bos, eos, pad) fits it.
const std::string& tiny_tokenizer_json() {
  static const std::string json = [] {
    nlohmann::json j = nlohmann::json::parse(read(kData + "/tokenizer/tiny_spm/tokenizer.json"));
    int64_t id = static_cast<int64_t>(j["model"]["vocab"].size());
    for (const char* special : {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
                                "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                                "<｜begin▁of▁sentence｜>",
                                "<｜end▁of▁sentence｜>",
                                "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"})
      j["added_tokens"].push_back({{"id", id++}, {"content", special}, {"single_word", false}, {"lstrip", false},
                                   {"rstrip", false}, {"normalized", false}, {"special", true}});
    return j.dump();
  }();
  return json;
}

// A small sentencepiece-style tokenizer with BOS and EOS (made once, before the children fork).
const tok::Tokenizer& tiny_tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::from_file(kData + "/tokenizer/tiny_spm");
  return t;
}

constexpr data::ChatTemplate kTemplates[] = {data::ChatTemplate::chatml, data::ChatTemplate::qwen3,
                                             data::ChatTemplate::llama3, data::ChatTemplate::deepseek};

std::vector<std::string> jsonl_seeds(const std::string&) {
  std::vector<std::string> seeds = files(kData + "/jsonl", ".jsonl");
  seeds.push_back("{\"prompt\": \"Once upon\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n\n"
                  "{\"prompt\": \"\\u00e9t\\u00e9 \\ud83d\\ude00\", \"completion\": \" x\"}\n");
  seeds.push_back("{\"text\": \"a b c\"}\r\n{\"text\": \"\"}\n   \n{\"text\": \"" + std::string(200, 'z') + "\"}");
  return seeds;
}

std::string input_ids_seed(const std::string& scratch, DType dtype, Shape shape) {
  std::vector<int64_t> ids(shape_numel(shape));
  std::vector<int32_t> ids32(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) ids32[i] = static_cast<int32_t>(ids[i] = static_cast<int64_t>(i * 7 % 16));
  const std::string path = (fs::path(scratch) / "seed-ids.safetensors").string();
  save_safetensors(path, {{"input_ids", dtype == DType::I32 ? Tensor::from_vector(ids32, shape, dtype)
                                                            : Tensor::from_vector(ids, shape, dtype)}});
  return read(path);
}

std::vector<std::string> chat_seeds(const std::string&) {
  std::vector<std::string> configs;
  for (const char* name : {"deepseek_v3", "llama3", "qwen3"})
    configs.push_back(read(kData + "/tokenizers/" + name + "/tokenizer_config.json"));
  configs.push_back(read(kData + "/tokenizer/tiny_spm/tokenizer_config.json"));
  const std::vector<std::string> lines = {
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|im_end|>"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello"}]})",
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": ""}]})"};
  std::vector<std::string> seeds;
  for (size_t i = 0; i < configs.size(); ++i) seeds.push_back(bundle({configs[i], lines[i % lines.size()]}));
  return seeds;
}

}  // namespace

void add_text_file_drivers(std::vector<Driver>& d) {
  d.push_back({"jsonl", "a JSONL file as training or calibration data (DataLoader, every format; and as a plain "
               "text file) and as generate --input prompts",
               jsonl_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const std::string path = write(scratch, "data.jsonl", input);
                 Steps steps;
                 for (const char* format : {"auto", "text", "completion", "chat"})
                   for (const bool skip : {false, true})
                     steps.run([&] {
                       const data::DataLoader loader({.train = path, .format = format, .seq_len = 16,
                                                      .chat_template = "chatml", .skip_bad_lines = skip},
                                                     tiny_tokenizer(), 1);
                       if (loader.num_sequences() > 0) (void)loader.global_batch(1, 1, 0, 1);
                     });
                 steps.run([&] {  // the same bytes as a plain text file (one document)
                   const data::DataLoader loader({.train = write(scratch, "data.txt", input), .seq_len = 16},
                                                 tiny_tokenizer(), 1);
                   (void)loader.num_sequences();
                 });
                 const data::DocumentEncoder encoder(tiny_tokenizer(), data::Format::text, data::ChatTemplate::llama3);
                 for (const bool chat : {false, true})
                   steps.run([&] { (void)inference::read_jsonl_prompts(path, encoder, chat); });
                 steps.finish();
               },
               tessera_error});
  d.push_back({"input_ids", "generate/forward --input-ids: inference::read_input_ids",
               [](const std::string& scratch) {
                 std::vector<std::string> seeds = files(kData + "/hf/llama_gqa", "inputs.safetensors");
                 seeds.push_back(input_ids_seed(scratch, DType::I32, {3, 5}));
                 seeds.push_back(input_ids_seed(scratch, DType::I64, {1, 1}));
                 return seeds;
               },
               [](const std::string& input, const std::string& scratch) {
                 (void)inference::read_input_ids(write(scratch, "ids.safetensors", input));
               },
               tessera_error});
  d.push_back({"chat", "chat messages with a tokenizer_config.json's chat template: resolve_chat_template, then "
               "every template's rendering and encoding",
               chat_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const std::string folder = write_bundle((fs::path(scratch) / "chat").string(), input,
                                                         {"tokenizer_config.json", "messages.jsonl"});
                 const tok::Tokenizer t = tok::Tokenizer::from_json(
                     tiny_tokenizer_json(), read(fs::path(folder) / "tokenizer_config.json"), "tokenizer_config.json");
                 Steps steps;
                 steps.run([&] { (void)data::resolve_chat_template("", t); });
                 const data::Example e = data::parse_jsonl_line(read(fs::path(folder) / "messages.jsonl"),
                                                                data::Format::chat, "messages.jsonl:1");
                 for (const data::ChatTemplate ct : kTemplates)
                   steps.run([&] {
                     const data::DocumentEncoder encoder(t, data::Format::chat, ct);
                     (void)encoder.encode(e);
                     (void)encoder.chat_prompt(e.messages);
                   });
                 steps.finish();
               },
               tessera_error});
  d.push_back({"api_keys", "the serve API keys file: ApiKeys::add_file, then check",
               [](const std::string&) {
                 return std::vector<std::string>{
                     "sk-plain-key\n# a comment\n\nalice sk-alice-0123456789\n  bob\tsk-bob  \n",
                     "ci sk-ci\r\nops sk-ops\r\n#last\r\n", std::string("k\xc3\xa9y-\xff\xfe x\n", 11)};
               },
               [](const std::string& input, const std::string& scratch) {
                 server::ApiKeys keys;
                 keys.add_file(write(scratch, "keys.txt", input));
                 for (const char* header : {"Bearer sk-plain-key", "Bearer ", "", "Bearer sk-bob"})
                   (void)keys.check(header);
               },
               tessera_error});
}

}  // namespace tessera::fuzz
