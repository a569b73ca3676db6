#include "fuzz/fuzz_util.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/safetensors_writer.h"
#include "model/model_config.h"
#include "model/model_config_params.h"

namespace tessera::fuzz {

namespace fs = std::filesystem;

namespace {
const std::string kSeparator = "\n\x01--tessera-fuzz-next-file--\x01\n";
}  // namespace

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string write(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = (fs::path(dir) / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

std::vector<std::string> files(const std::string& dir, const std::string& suffix, size_t max_bytes) {
  std::vector<std::string> out;
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().string().ends_with(suffix) && e.file_size() <= max_bytes)
      paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) out.push_back(read(p));
  return out;
}

uint64_t touch(const Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.data());
  uint64_t sum = 0;
  for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  return sum;
}

bool tessera_error(const std::exception& e) { return dynamic_cast<const Error*>(&e) != nullptr; }

std::string bundle(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? kSeparator : "") + parts[i];
  return out;
}

std::string write_bundle(const std::string& folder, const std::string& input, const std::vector<std::string>& names) {
  fs::remove_all(folder);
  fs::create_directories(folder);
  size_t begin = 0;
  for (const std::string& name : names) {
    const size_t end = input.find(kSeparator, begin);
    write(folder, name, input.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + kSeparator.size();
  }
  return folder;
}

nlohmann::json tiny_model_config() {
  return {{"model_type", "llama"},         {"vocab_size", 16},          {"hidden_size", 64},
          {"intermediate_size", 128},      {"num_hidden_layers", 2},    {"num_attention_heads", 4},
          {"num_key_value_heads", 2},      {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-5},          {"tie_word_embeddings", false}, {"torch_dtype", "float32"}};
}

std::string tiny_model_folder(const std::string& scratch, const std::string& name) {
  const fs::path folder = fs::path(scratch) / name;
  fs::remove_all(folder);
  fs::create_directories(folder);
  const nlohmann::json j = tiny_model_config();
  write(folder.string(), "config.json", j.dump(2));
  const ModelConfig c = ModelConfig::from_json(j);
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t k = 1;
  for (const ParamSpec& p : model_parameters(c)) {
    std::vector<float> v(shape_numel(p.shape));
    for (float& x : v) x = static_cast<float>(static_cast<int64_t>((k = k * 6364136223846793005ull + 1) >> 40) % 201 - 100) * 1e-3f;
    tensors.emplace_back(p.name, Tensor::from_vector(v, p.shape, DType::F32));
  }
  save_safetensors((folder / "model.safetensors").string(), tensors);
  return folder.string();
}

}  // namespace tessera::fuzz
