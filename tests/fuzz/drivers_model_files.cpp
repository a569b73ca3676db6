// Fuzz drivers for the model files users bring or Tessera writes for them to carry elsewhere:
// PEFT adapter folders, quantized checkpoints (config.json's quantization_config with its packed
// safetensors), SHA256SUMS and the serve config's `checksums`, and GGUF tokenizer metadata.
#include <filesystem>

#include "engine/export_quantized.h"
#include "engine/gguf_loader.h"
#include "engine/model_folder.h"
#include "engine/model_weights.h"
#include "engine/server/serve_config.h"
#include "engine/sha256sums.h"
#include "engine/checkpoint/manifest.h"
#include "fuzz/drivers.h"
#include "fuzz/fuzz_util.h"
#include "gguf_vocab_file.h"
#include "io/gguf_vocab.h"
#include "lora/peft.h"

namespace tessera::fuzz {

namespace {

namespace fs = std::filesystem;

const ModelConfig& tiny_config() {
  static const ModelConfig c = ModelConfig::from_json(tiny_model_config());
  return c;
}

// The tiny model's folder, made once per scratch folder (adapters and quantized checkpoints load onto it).
std::string base_folder(const std::string& scratch) {
  const fs::path folder = fs::path(scratch) / "base";
  if (!fs::exists(folder / "model.safetensors")) tiny_model_folder(scratch, "base");
  return folder.string();
}

std::string peft_seed(const std::string& scratch, const lora::LoraOptions& options, DType dtype) {
  const std::string folder = (fs::path(scratch) / "seed-adapter").string();
  fs::remove_all(folder);
  const lora::AdapterSpec spec = lora::resolve(options, tiny_config());
  lora::write_peft_adapter(folder, tiny_config(), spec, "base", [](const ParamSpec& p) {
    std::vector<float> v(shape_numel(p.shape));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(static_cast<int64_t>(i % 13) - 6);
    return Tensor::from_vector(v, p.shape, DType::F32);
  }, dtype);
  return bundle({read(fs::path(folder) / lora::kPeftConfigFile), read(fs::path(folder) / lora::kPeftWeightsFile)});
}

std::vector<std::string> peft_seeds(const std::string& scratch) {
  lora::LoraOptions all;
  all.r = 4;
  lora::LoraOptions some;
  some.r = 2, some.alpha = 4, some.target_modules = {"q_proj", "v_proj", "down_proj"}, some.layers = {1};
  some.use_rslora = true, some.init = "gaussian";
  lora::LoraOptions saved;
  saved.r = 1, saved.target_modules = {"o_proj"}, saved.modules_to_save = {"embed_tokens", "lm_head"};
  return {peft_seed(scratch, all, DType::F32), peft_seed(scratch, some, DType::BF16),
          peft_seed(scratch, saved, DType::F16)};
}

std::vector<std::string> quantized_seeds(const std::string& scratch) {
  const std::string base = base_folder(scratch);
  std::vector<std::string> seeds;
  const std::vector<QuantSpec> specs = {{QuantScheme::Int4, 32, true}, {QuantScheme::Int4, 64, false},
                                        {QuantScheme::Int8, 0, true},  {QuantScheme::Q8_0, 0, true},
                                        {QuantScheme::Q4_0, 0, true},  {QuantScheme::NF4, 0, true}};
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string out = (fs::path(scratch) / ("seed-quantized-" + std::to_string(i))).string();
    fs::remove_all(out);
    export_quantized({.model = base, .out = out, .scheme = specs[i],
                      .modules = i == 2 ? std::vector<std::string>{"q_proj", "down_proj"} : std::vector<std::string>{},
                      .dtype = i % 2 ? DType::BF16 : DType::F32});
    seeds.push_back(bundle({read(fs::path(out) / "config.json"), read(fs::path(out) / "model.safetensors")}));
  }
  return seeds;
}

// The files a SHA256SUMS or `checksums` lists in the seeds (written again by every parse, so a
// replay finds them too).
const std::vector<std::pair<std::string, std::string>> kListedFiles = {
    {"config.json", "{\"model_type\": \"llama\"}\n"}, {"model.safetensors", std::string(300, '\x07')}, {"empty", ""}};

std::string listed_folder(const std::string& scratch) {
  const std::string folder = (fs::path(scratch) / "listed").string();
  fs::create_directories(folder);
  for (const auto& [name, bytes] : kListedFiles) write(folder, name, bytes);
  return folder;
}

std::vector<std::string> sha256sums_seeds(const std::string& scratch) {
  const std::string folder = listed_folder(scratch);
  std::string text, binary;
  for (const auto& [name, bytes] : kListedFiles) {
    const std::string sum = checkpoint::sha256_file((fs::path(folder) / name).string());
    text += sum + "  " + name + "\n";
    std::string upper = sum;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    binary += upper + " *" + name + "\r\n";
  }
  return {text, binary, "\n" + text + "\n\n"};
}

std::vector<std::string> serve_checksums_seeds(const std::string& scratch) {
  const std::string folder = listed_folder(scratch);
  std::string yaml = "model: " + folder + "\nverify: true\nchecksums:\n";
  for (const auto& [name, bytes] : kListedFiles)
    yaml += "  " + name + ": " + checkpoint::sha256_file((fs::path(folder) / name).string()) + "\n";
  return {yaml, "model: " + folder + "\nchecksums: {\"config.json\": \"" +
                    checkpoint::sha256_file((fs::path(folder) / "config.json").string()) + "\"}\n"};
}

std::string gguf_vocab_seed(const std::string& scratch, const gguf::Vocab& vocab) {
  const std::string path = (fs::path(scratch) / "seed-vocab.gguf").string();
  testing_util::write_vocab_gguf(path, vocab);
  return read(path);
}

std::vector<std::string> gguf_vocab_seeds(const std::string& scratch) {
  std::vector<std::string> seeds;
  for (const char* pre : {"gpt-2", "llama-bpe", "qwen2", "deepseek-v3"}) {
    gguf::Vocab v;
    v.pre = pre;
    v.tokens = {"a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "a", "<s>", "</s>", "<|im_start|>", "[PAD8]"};
    v.token_types = {1, 1, 1, 1, 1, 3, 3, 4, 5};
    v.merges = {"a b", "\xc4\xa0 a"};
    v.bos = 5, v.eos = 6, v.pad = 6, v.add_bos = std::string(pre) != "qwen2";
    v.chat_template = "{% for message in messages %}<|im_start|>{{ message['content'] }}{% endfor %}";
    seeds.push_back(gguf_vocab_seed(scratch, v));
  }
  seeds.push_back(gguf_vocab_seed(scratch, gguf::byte_vocab(260)));
  return seeds;
}

}  // namespace

void add_model_file_drivers(std::vector<Driver>& d) {
  d.push_back({"peft_adapter", "a PEFT adapter folder: lora::read_peft_adapter, then attached to a model as --adapter does",
               peft_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const std::string folder = write_bundle((fs::path(scratch) / "adapter").string(), input,
                                                         {lora::kPeftConfigFile, lora::kPeftWeightsFile});
                 const lora::PeftAdapter a = lora::read_peft_adapter(folder, tiny_config());
                 uint64_t sum = 0;
                 for (const std::string& name : a.weights.names()) sum += touch(a.weights.tensor(name));
                 (void)sum;
                 (void)load_runnable_model(base_folder(scratch),
                                           {.verify = false, .tokenizer_required = false, .adapter = folder});
               },
               tessera_error});
  d.push_back({"quantized_checkpoint",
               "a quantized checkpoint (config.json's quantization_config, packed safetensors): ModelWeights and the "
               "packed and dequantized loads",
               quantized_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const std::string folder = write_bundle((fs::path(scratch) / "quantized").string(), input,
                                                         {"config.json", "model.safetensors"});
                 const ModelConfig c = ModelConfig::from_file((fs::path(folder) / "config.json").string());
                 const ModelWeights w = ModelWeights::open(folder, c);
                 uint64_t sum = 0;
                 for (const ParamSpec& p : model_parameters(c)) sum += touch(w.tensor(p));
                 (void)sum;
                 for (const QuantizedWeights q : {QuantizedWeights::packed, QuantizedWeights::dequantize})
                   (void)load_runnable_model(folder, {.verify = false, .tokenizer_required = false, .quantized = q});
               },
               tessera_error});
  d.push_back({"sha256sums", "a folder's SHA256SUMS: read_sha256sums and verify_sha256sums", sha256sums_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const std::string folder = listed_folder(scratch);
                 write(folder, kSha256SumsFile, input);
                 (void)read_sha256sums(folder);
                 (void)verify_sha256sums(folder);
               },
               tessera_error});
  d.push_back({"serve_checksums", "the serve config's checksums: load_serve_config, then verify_checksums",
               serve_checksums_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const std::string folder = listed_folder(scratch);
                 const server::ServeConfig c = server::load_serve_config(write(scratch, "serve.yaml", input));
                 (void)verify_checksums(folder, c.checksum_map());
               },
               tessera_error});
  d.push_back({"gguf_tokenizer", "a GGUF file's tokenizer.* metadata: gguf_tokenizer, then encode and decode",
               gguf_vocab_seeds,
               [](const std::string& input, const std::string& scratch) {
                 const gguf::File f = gguf::File::open(write(scratch, "vocab.gguf", input));
                 const tok::Tokenizer t = gguf_tokenizer(f);
                 const std::vector<int32_t> ids = t.encode("ab ba <|im_start|>a\xc3\xa9 \xe4\xbd\xa0 </s>", true);
                 (void)t.decode(ids, false);
                 (void)t.decode(ids, true);
                 (void)t.chat_template();
               },
               tessera_error});
}

}  // namespace tessera::fuzz
