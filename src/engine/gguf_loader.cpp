#include "engine/gguf_loader.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "engine/gguf_model.h"
#include "io/gguf_vocab.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"
#include "quant/ggml_codec.h"

namespace tessera {

namespace {

constexpr const char* kRopeFreqs = "rope_freqs.weight";

std::vector<float> decode(const gguf::File& f, const gguf::TensorInfo& t) {
  return ggml::decode(f.data(t), t.shape, t.type).to_vector<float>();
}

// llama3 scaling travels twice: the keys our config is built from and llama.cpp's rope_freqs.
void check_rope_freqs(const gguf::File& f, const ModelConfig& config) {
  const gguf::TensorInfo* t = f.find_tensor(kRopeFreqs);
  if (!t) return;
  const std::vector<float> want = gguf_rope_freq_factors(config);
  const std::vector<float> got = decode(f, *t);
  TS_CHECK(got.size() == want.size(), "{}: rope_freqs has {} values for head_dim {}", f.path(), got.size(),
           config.head_dim);
  for (size_t i = 0; i < got.size(); ++i)
    TS_CHECK(std::abs(got[i] - want[i]) <= 1e-5f * want[i], "{}: rope_freqs[{}] is {}, the llama3 keys give {}",
             f.path(), i, got[i], want[i]);
}

// A q8_0 / q4_0 matrix's blocks as our packed form: llama.cpp's records are exactly the parts'
// layout (kernels/quant_format.h), so the bytes are taken as they are (rows put back in
// transformers' order where the file permutes them).
PackedTensor packed_from_gguf(const gguf::File& f, const gguf::TensorInfo& t, bool permuted, int64_t head_dim) {
  PackedTensor packed;
  packed.spec = resolve_quant_spec({t.type == gguf::TensorType::Q8_0 ? QuantScheme::Q8_0 : QuantScheme::Q4_0}, t.shape);
  packed.shape = t.shape;
  const PackedPartSpec part = packed_part_specs(packed.spec, packed.shape).at(0);
  const Tensor bytes = f.data(t);
  TS_CHECK(bytes.numel() == shape_numel(part.shape), "{}: tensor '{}' holds {} bytes, {} {} needs {}", f.path(),
           t.name, bytes.numel(), quant_scheme_name(packed.spec.scheme), shape_str(t.shape), shape_numel(part.shape));
  Tensor blocks = Tensor::empty(part.shape, DType::U8);
  if (permuted)
    unpermute_row_bytes_from_gguf(bytes.data_as<uint8_t>(), blocks.data_as<uint8_t>(), part.shape[0], part.shape[1],
                                  head_dim);
  else
    copy_bytes(blocks, bytes);
  packed.parts = {blocks};
  return packed;
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) return false;
  std::ifstream in(path, std::ios::binary);
  uint32_t magic = 0;
  in.read(reinterpret_cast<char*>(&magic), 4);
  return in && magic == gguf::kMagic;
}

ModelConfig gguf_model_config(const gguf::File& file) { return model_config_from_gguf(file); }

LoadedModel load_gguf_model(const std::string& path, DType dtype, Device device, QuantizedWeights quantized) {
  const gguf::File f = gguf::File::open(path);
  LoadedModel model;
  model.config = model_config_from_gguf(f);
  check_rope_freqs(f, model.config);
  std::set<std::string> expected = {kRopeFreqs};
  std::map<std::string, std::string> gguf_name_of;
  for (const ParamSpec& p : model_parameters(model.config)) {
    const std::string name = gguf_tensor_name(p.name);
    const gguf::TensorInfo& t = f.tensor(name);
    TS_CHECK(t.shape == p.shape, "{}: tensor '{}' is {}, the metadata implies {}", path, name, shape_str(t.shape),
             shape_str(p.shape));
    expected.insert(name);
    gguf_name_of[p.name] = name;
  }
  for (const gguf::TensorInfo& t : f.tensors())
    TS_CHECK(expected.count(t.name), "{}: tensor '{}' is not part of a {} model", path, t.name, model.config.model_type);

  int64_t packed = 0;
  for_each_param(model.config, model.params, [&](const std::string& hf_name, Tensor& slot) {
    const gguf::TensorInfo& t = f.tensor(gguf_name_of.at(hf_name));
    if (quantized == QuantizedWeights::packed && (t.type == gguf::TensorType::Q8_0 || t.type == gguf::TensorType::Q4_0))
      if (Linear* owner = weight_owner(model.params, hf_name)) {
        set_packed_base(*owner, packed_from_gguf(f, t, gguf_permutes_rows(model.config, hf_name), model.config.head_dim),
                        device);
        ++packed;
        return;
      }
    std::vector<float> values = decode(f, t);
    if (gguf_permutes_rows(model.config, hf_name)) {
      std::vector<float> hf(values.size());
      const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
      unpermute_rows_from_gguf(values.data(), hf.data(), t.shape[0], cols, model.config.head_dim);
      values.swap(hf);
    }
    slot = ops::cast(Tensor::from_vector(values, t.shape, DType::F32), dtype).to(device);
  });
  if (packed > 0) spdlog::info("{}: {} q8_0 / q4_0 projections kept packed", path, packed);
  return model;
}

tok::Tokenizer gguf_tokenizer(const gguf::File& file) {
  return gguf::tokenizer_from_vocab(gguf::vocab_from_gguf(file), file.path());
}

LoadedModel load_model_file(const std::string& path, DType dtype, Device device, QuantizedWeights quantized) {
  return is_gguf_file(path) ? load_gguf_model(path, dtype, device, quantized)
                            : load_hf_model(path, dtype, device, quantized);
}

}  // namespace tessera
