#include "engine/export_gguf.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "engine/export_source.h"
#include "engine/gguf_model.h"
#include "engine/qat_scales.h"
#include "io/gguf_vocab.h"
#include "io/gguf_writer.h"
#include "quant/ggml_codec.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRopeFreqs = "rope_freqs.weight";

gguf::TensorType type_for(const ParamSpec& p, gguf::TensorType wanted) {
  if (p.shape.size() < 2) return gguf::TensorType::F32;
  const int64_t block = gguf::tensor_type_info(wanted).block_elements;
  if (p.shape.back() % block == 0) return wanted;
  spdlog::warn("export: {} has rows of {} values, not whole {}-value blocks: written as f16", p.name,
               p.shape.back(), block);
  return gguf::TensorType::F16;
}

gguf::Vocab vocab_for(const ExportSource& source) {
  const ModelConfig& c = source.config();
  if (source.tokenizer() == "bytes") return gguf::byte_vocab(c.vocab_size);
  TS_CHECK(!source.tokenizer().empty(), "{}: no tokenizer.json: a GGUF file carries its tokenizer", source.folder());
  auto first = [](const std::vector<int64_t>& ids) {
    return ids.empty() ? std::nullopt : std::optional<int32_t>(static_cast<int32_t>(ids.front()));
  };
  return gguf::vocab_from_tokenizer(source.tokenizer(), c.vocab_size, first(c.bos_token_ids), first(c.eos_token_ids));
}

// t (fp32, host; rows of the parameter `name`, as its values or its scales) in llama.cpp's row
// order: q/k rows permuted for the llama architecture.
Tensor gguf_rows(const ModelConfig& config, const std::string& name, const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::F32);
  const float* data = t.data_as<float>();
  if (gguf_permutes_rows(config, name)) {
    const int64_t cols = t.ndim() == 2 ? t.size(1) : 1;
    permute_rows_for_gguf(data, out.data_as<float>(), t.size(0), cols, config.head_dim);
  } else {
    std::copy(data, data + t.numel(), out.data_as<float>());
  }
  return out;
}

// The parameter as llama.cpp wants it: its rows in llama.cpp's order, all finite.
Tensor gguf_values(const ExportSource& source, const ParamSpec& p) {
  const Tensor out = gguf_rows(source.config(), p.name, source.read(p));
  for (int64_t i = 0; i < out.numel(); ++i)
    TS_CHECK(std::isfinite(out.data_as<float>()[i]), "{}: parameter '{}' has a non-finite value", source.folder(), p.name);
  return out;
}

}  // namespace

void export_gguf(const GgufExportOptions& o) {
  TS_CHECK(o.checkpoint.empty() != o.model.empty(), "export: give one of --checkpoint and --model");
  TS_CHECK(!fs::exists(o.out), "--out {}: exists (nothing was overwritten)", o.out);
  const ExportSource source = o.checkpoint.empty() ? ExportSource::hf_folder(o.model) : ExportSource::checkpoint(o.checkpoint);
  const ModelConfig& config = source.config();

  gguf::Metadata metadata;
  add_model_metadata(config, metadata);
  metadata.emplace_back("general.name", gguf::Value::string(fs::path(source.folder()).filename().string()));
  metadata.emplace_back("general.file_type", gguf::Value::u32(gguf::file_type_of(o.type)));
  metadata.emplace_back("general.quantization_version", gguf::Value::u32(2));
  metadata.emplace_back("general.alignment", gguf::Value::u32(gguf::kDefaultAlignment));
  gguf::add_vocab_metadata(vocab_for(source), metadata);

  std::vector<gguf::TensorDecl> tensors;
  for (const ParamSpec& p : source.params()) tensors.push_back({gguf_tensor_name(p.name), type_for(p, o.type), p.shape});
  const std::vector<float> rope_freqs = gguf_rope_freq_factors(config);
  if (!rope_freqs.empty())
    tensors.push_back({kRopeFreqs, gguf::TensorType::F32, {static_cast<int64_t>(rope_freqs.size())}});

  if (!fs::path(o.out).parent_path().empty()) fs::create_directories(fs::path(o.out).parent_path());
  gguf::Writer writer(o.out, metadata, tensors);
  // A QAT job that learned its scales on this grid: its projections quantized with them.
  const std::optional<LearnedScales> learned = learned_scales(source);
  const std::optional<QuantScheme> grid = o.type == gguf::TensorType::Q8_0   ? std::optional(QuantScheme::Q8_0)
                                          : o.type == gguf::TensorType::Q4_0 ? std::optional(QuantScheme::Q4_0)
                                                                             : std::nullopt;
  const bool use_learned = learned && grid && learned->targets.weights.scheme == *grid;
  if (learned && !use_learned)
    spdlog::warn("export: {} is not the grid the QAT job learned its scales on ({}): plain round-to-nearest",
                 gguf::tensor_type_info(o.type).name, learned->targets.describe());
  for (size_t i = 0; i < source.params().size(); ++i) {
    const ParamSpec& p = source.params()[i];
    if (use_learned && tensors[i].type == o.type && learned->targets.selects(p.name)) {
      auto rows = [&](const Tensor& t) { return gguf_rows(source.config(), p.name, t); };
      const PackedTensor packed = quantize_learned(source, p, source.read(p), learned->targets.weights,
                                                   learned->compute, rows);
      writer.write(tensors[i].name, packed.parts[0].data(), packed.parts[0].nbytes());
      continue;
    }
    const Tensor bytes = ggml::encode(gguf_values(source, p), tensors[i].type);
    writer.write(tensors[i].name, bytes.data(), bytes.nbytes());
  }
  if (!rope_freqs.empty()) writer.write(kRopeFreqs, rope_freqs.data(), rope_freqs.size() * sizeof(float));
  writer.finish();
  spdlog::info("exported {} tensors{} from {} to {} ({})", tensors.size(), source.merge_note(), source.folder(), o.out,
               gguf::tensor_type_info(o.type).name);
}

}  // namespace tessera
