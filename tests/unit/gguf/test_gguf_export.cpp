// GGUF export: the tokenizer as llama.cpp's vocabulary, the architecture mapping (names, the q/k
// permutation, rope_freqs), and whole exports of tiny models read back tensor by tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <random>

#include "core/error.h"
#include "error_text.h"
#include "test_dir.h"
#include "engine/checkpoint/state_file.h"
#include "engine/export_gguf.h"
#include "engine/gguf_model.h"
#include "io/gguf_reader.h"
#include "io/gguf_vocab.h"
#include "io/safetensors.h"
#include "quant/packed.h"
#include "quant/ggml_codec.h"
#include "run_command.h"
#include "tiny_model.h"

namespace fs = std::filesystem;
using namespace tessera;
using gguf::TensorType;
using nlohmann::json;

namespace {

const std::string kTokenizers = TESSERA_TEST_DATA "/tokenizers/";

fs::path temp_dir() { return testing_util::fresh_test_dir("tessera_gguf_export"); }

json tiny_config(const std::string& model_type, int64_t vocab) {
  json c = {{"model_type", model_type},      {"vocab_size", vocab},         {"hidden_size", 64},
            {"intermediate_size", 96},       {"num_hidden_layers", 2},      {"num_attention_heads", 4},
            {"num_key_value_heads", 2},      {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},
            {"tie_word_embeddings", false}};
  if (model_type == "qwen3") c["head_dim"] = 32;
  return c;
}

std::vector<float> decoded(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo& t = f.tensor(name);
  return ggml::decode(f.data(t), t.shape, t.type).to_vector<float>();
}

std::vector<float> source_values(const fs::path& model, const std::string& name) {
  return ops::cast(SafetensorsModel::open(model.string()).tensor(name), DType::F32).to_vector<float>();
}

std::vector<float> permuted(const std::vector<float>& w, int64_t rows, int64_t head_dim) {
  std::vector<float> out(w.size());
  permute_rows_for_gguf(w.data(), out.data(), rows, static_cast<int64_t>(w.size()) / rows, head_dim);
  return out;
}

}  // namespace

TEST(GgufVocab, Qwen3TokenizerAsLlamaCppVocabulary) {
  const gguf::Vocab v = gguf::vocab_from_tokenizer(kTokenizers + "qwen3", 151936, std::nullopt, 151643);
  EXPECT_EQ(v.pre, "qwen2");
  ASSERT_EQ(v.tokens.size(), 151936u);
  EXPECT_EQ(v.tokens[151644], "<|im_start|>");
  EXPECT_EQ(v.token_types[151644], 3);  // control
  EXPECT_EQ(v.token_types[151667], 4);  // <think>: not special, user-defined
  EXPECT_EQ(v.token_types[151659], 3);  // <|fim_prefix|>: not special but looks it, as llama.cpp's converter decides
  EXPECT_EQ(v.tokens[151700], "[PAD151700]");
  EXPECT_EQ(v.token_types[151700], 5);  // unused
  EXPECT_EQ(v.tokens[220], "Ġ");
  EXPECT_EQ(v.token_types[220], 1);
  EXPECT_EQ(v.merges.size(), 151387u);
  EXPECT_EQ(v.merges[0], "Ġ Ġ");
  EXPECT_FALSE(v.bos.has_value());  // Qwen names no BOS, and none was given
  EXPECT_EQ(v.eos, 151645);         // tokenizer_config's <|im_end|> wins over config.json's
  EXPECT_EQ(v.pad, 151643);
  EXPECT_FALSE(v.add_bos);
  EXPECT_NE(v.chat_template.find("<|im_start|>"), std::string::npos);
}

TEST(GgufVocab, Llama3AndDeepSeekPreTokenizers) {
  const gguf::Vocab llama = gguf::vocab_from_tokenizer(kTokenizers + "llama3", 128256, std::nullopt, std::nullopt);
  EXPECT_EQ(llama.pre, "llama-bpe");
  EXPECT_EQ(llama.bos, 128000);
  EXPECT_EQ(llama.eos, 128001);
  EXPECT_FALSE(llama.add_bos);  // this tokenizer.json's post-processor adds no BOS, so ours does not either
  EXPECT_EQ(llama.merges.size(), 280147u);
  const gguf::Vocab ds = gguf::vocab_from_tokenizer(kTokenizers + "deepseek_v3", 129280, std::nullopt, std::nullopt);
  EXPECT_EQ(ds.pre, "deepseek-v3");
  EXPECT_TRUE(ds.add_bos);
  EXPECT_EQ(ds.bos, 0);
}

TEST(GgufVocab, ErrorsNameTheProblem) {
  auto error = [](const std::string& tokenizer, int64_t vocab) {
    return testing_util::error_of([&] { gguf::vocab_from_tokenizer(tokenizer, vocab, std::nullopt, std::nullopt); });
  };
  EXPECT_NE(error(kTokenizers + "qwen3", 1000).find("past the model's vocab_size 1000"), std::string::npos);
  EXPECT_NE(error(TESSERA_TEST_DATA "/tokenizer/tiny_spm", 100).find("byte-level"), std::string::npos);
}

TEST(GgufVocab, ByteTokenizer) {
  const gguf::Vocab v = gguf::byte_vocab(259);
  EXPECT_EQ(v.pre, "default");
  ASSERT_EQ(v.tokens.size(), 259u);
  EXPECT_EQ(v.tokens['a'], "a");
  EXPECT_EQ(v.tokens[' '], "Ġ");
  EXPECT_EQ(v.tokens[256], "<bos>");
  EXPECT_EQ(v.token_types[257], 3);
  EXPECT_TRUE(v.merges.empty());
  EXPECT_EQ(v.bos, 256);
  EXPECT_EQ(v.eos, 257);
  EXPECT_TRUE(v.add_bos);
  EXPECT_THROW(gguf::byte_vocab(100), Error);
}

TEST(GgufModel, TensorNames) {
  EXPECT_EQ(gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_tensor_name("lm_head.weight"), "output.weight");
  EXPECT_EQ(gguf_tensor_name("model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.11.self_attn.q_proj.bias"), "blk.11.attn_q.bias");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.self_attn.o_proj.weight"), "blk.0.attn_output.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.self_attn.k_norm.weight"), "blk.0.attn_k_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.2.post_attention_layernorm.weight"), "blk.2.ffn_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.2.mlp.down_proj.weight"), "blk.2.ffn_down.weight");
  EXPECT_THROW(gguf_tensor_name("model.layers.x.mlp.down_proj.weight"), Error);
  EXPECT_THROW(gguf_tensor_name("model.layers.1.mlp.fc.weight"), Error);
}

TEST(GgufModel, PermutationTurnsHalfRotationIntoPairRotation) {
  // transformers rotates (x[i], x[i + d/2]); llama.cpp's llama rotates (y[2i], y[2i + 1]). With
  // y = permuted rows, rotating y must give the permuted rotation of x, so q.k is unchanged.
  const int64_t d = 8, heads = 2, cols = 3;
  std::mt19937 gen(3);
  std::normal_distribution<float> normal;
  std::vector<float> w(heads * d * cols), v(cols);
  for (float& x : w) x = normal(gen);
  for (float& x : v) x = normal(gen);
  auto project = [&](const std::vector<float>& m) {
    std::vector<float> q(heads * d, 0.0f);
    for (int64_t r = 0; r < heads * d; ++r)
      for (int64_t c = 0; c < cols; ++c) q[r] += m[r * cols + c] * v[c];
    return q;
  };
  const double pos = 5;
  auto angle = [&](int64_t i) { return pos * std::pow(10000.0, -2.0 * i / d); };
  std::vector<float> hf = project(w), cpp = project(permuted(w, heads * d, d));
  std::vector<float> hf_rot(hf.size()), cpp_rot(cpp.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < d / 2; ++i) {
      const double c = std::cos(angle(i)), s = std::sin(angle(i));
      const float* x = &hf[h * d];
      hf_rot[h * d + i] = static_cast<float>(x[i] * c - x[i + d / 2] * s);
      hf_rot[h * d + i + d / 2] = static_cast<float>(x[i + d / 2] * c + x[i] * s);
      const float* y = &cpp[h * d];
      cpp_rot[h * d + 2 * i] = static_cast<float>(y[2 * i] * c - y[2 * i + 1] * s);
      cpp_rot[h * d + 2 * i + 1] = static_cast<float>(y[2 * i] * s + y[2 * i + 1] * c);
    }
  const std::vector<float> want = permuted(hf_rot, heads * d, d);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(cpp_rot[i], want[i], 1e-5) << i;
  // And by hand for one head of 8 rows: rows 0 4 1 5 2 6 3 7.
  std::vector<float> rows = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(permuted(rows, 8, 8), (std::vector<float>{0, 4, 1, 5, 2, 6, 3, 7}));
}

TEST(GgufModel, Llama3RopeFreqFactors) {
  json c = tiny_config("llama", 300);
  c["rope_scaling"] = {{"rope_type", "llama3"},    {"factor", 8.0},  {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  c["rope_theta"] = 500000.0;
  const ModelConfig config = ModelConfig::from_json(c);
  const std::vector<float> f = gguf_rope_freq_factors(config);
  ASSERT_EQ(f.size(), 8u);  // head_dim 16
  // As llama.cpp's converter computes them: 1 below wavelength 64 / 4, 8 above 64 / 1, smooth between.
  for (size_t i = 0; i < f.size(); ++i) {
    const double freq = std::pow(500000.0, -2.0 * i / 16), wavelen = 2 * std::numbers::pi / freq;
    const double smooth = (64 / wavelen - 1.0) / (4.0 - 1.0);
    const double want = wavelen < 16 ? 1.0 : wavelen > 64 ? 8.0 : 1 / ((1 - smooth) / 8 + smooth);
    EXPECT_NEAR(f[i], want, 1e-5 * want) << i;
  }
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f.back(), 8.0f, 1e-5);
  EXPECT_TRUE(gguf_rope_freq_factors(ModelConfig::from_json(tiny_config("llama", 300))).empty());
}

TEST(GgufModel, RefusesWhatLlamaCppWouldComputeDifferently) {
  json yarn = tiny_config("qwen2", 300);
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}};
  EXPECT_THROW(gguf_architecture(ModelConfig::from_json(yarn)), Error);
  json biased = tiny_config("qwen3", 300);
  biased["attention_bias"] = true;
  EXPECT_THROW(gguf_architecture(ModelConfig::from_json(biased)), Error);
  EXPECT_EQ(gguf_architecture(ModelConfig::from_json(tiny_config("mistral", 300))), "llama");
}

TEST(GgufExport, LlamaF32ReadsBackExactlyWithPermutedQK) {
  const fs::path dir = temp_dir();
  json c = tiny_config("llama", 128256);
  c["rope_scaling"] = {{"rope_type", "llama3"},    {"factor", 8.0},  {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
  c["bos_token_id"] = 128000;
  testing_util::write_tiny_model(dir / "model", c, kTokenizers + "llama3", 5);
  const std::string out = (dir / "llama.gguf").string();
  export_gguf({.model = (dir / "model").string(), .out = out, .type = TensorType::F32});

  const gguf::File f = gguf::File::open(out);
  EXPECT_EQ(f.at("general.architecture").as_string(), "llama");
  EXPECT_EQ(f.at("general.file_type").as_int(), 0);
  EXPECT_EQ(f.at("llama.block_count").as_int(), 2);
  EXPECT_EQ(f.at("llama.context_length").as_int(), 256);
  EXPECT_EQ(f.at("llama.embedding_length").as_int(), 64);
  EXPECT_EQ(f.at("llama.feed_forward_length").as_int(), 96);
  EXPECT_EQ(f.at("llama.attention.head_count").as_int(), 4);
  EXPECT_EQ(f.at("llama.attention.head_count_kv").as_int(), 2);
  EXPECT_EQ(f.at("llama.rope.dimension_count").as_int(), 16);
  EXPECT_FLOAT_EQ(f.at("llama.attention.layer_norm_rms_epsilon").as_float(), 1e-5f);
  EXPECT_EQ(f.at("tokenizer.ggml.model").as_string(), "gpt2");
  EXPECT_EQ(f.at("tokenizer.ggml.pre").as_string(), "llama-bpe");
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").array_size(), 128256u);
  EXPECT_EQ(f.at("tokenizer.ggml.bos_token_id").as_int(), 128000);
  EXPECT_EQ(f.find("llama.rope.scaling.type"), nullptr);  // llama3 scaling travels as rope_freqs
  EXPECT_EQ(decoded(f, "rope_freqs.weight"), gguf_rope_freq_factors(ModelConfig::from_file((dir / "model").string())));

  EXPECT_EQ(f.tensors().size(), 2u * 9 + 4);  // 9 per layer; embeddings, final norm, output, rope_freqs
  EXPECT_EQ(f.tensor("token_embd.weight").shape, (Shape{128256, 64}));
  EXPECT_EQ(decoded(f, "output.weight"), source_values(dir / "model", "lm_head.weight"));
  EXPECT_EQ(decoded(f, "blk.1.attn_v.weight"), source_values(dir / "model", "model.layers.1.self_attn.v_proj.weight"));
  EXPECT_EQ(decoded(f, "blk.1.attn_q.weight"),
            permuted(source_values(dir / "model", "model.layers.1.self_attn.q_proj.weight"), 64, 16));
  EXPECT_EQ(decoded(f, "blk.0.attn_k.weight"),
            permuted(source_values(dir / "model", "model.layers.0.self_attn.k_proj.weight"), 32, 16));
  for (const gguf::TensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.type, TensorType::F32) << t.name;
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
  }

  // A second export to the same file is refused and leaves it alone.
  const auto size = fs::file_size(out);
  EXPECT_THROW(export_gguf({.model = (dir / "model").string(), .out = out, .type = TensorType::Q8_0}), Error);
  EXPECT_EQ(fs::file_size(out), size);
}

TEST(GgufExport, QuantizedMatricesAreGgmlBlocksOfTheWeights) {
  const fs::path dir = temp_dir();
  json c = tiny_config("qwen3", 151936);
  c["tie_word_embeddings"] = true;
  c["intermediate_size"] = 80;  // down_proj rows of 80: not whole blocks, so f16
  testing_util::write_tiny_model(dir / "model", c, kTokenizers + "qwen3", 9);
  const std::string out = (dir / "q4.gguf").string();
  export_gguf({.model = (dir / "model").string(), .out = out, .type = TensorType::Q4_0});

  const gguf::File f = gguf::File::open(out);
  EXPECT_EQ(f.at("general.architecture").as_string(), "qwen3");
  EXPECT_EQ(f.at("general.file_type").as_int(), 2);
  EXPECT_EQ(f.at("qwen3.attention.key_length").as_int(), 32);
  EXPECT_EQ(f.at("tokenizer.ggml.pre").as_string(), "qwen2");
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied: llama.cpp reuses token_embd
  EXPECT_EQ(f.find_tensor("rope_freqs.weight"), nullptr);
  EXPECT_EQ(f.tensor("blk.0.attn_q_norm.weight").type, TensorType::F32);
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").type, TensorType::F16);
  EXPECT_EQ(f.tensor("blk.0.ffn_up.weight").type, TensorType::Q4_0);
  EXPECT_EQ(f.tensor("token_embd.weight").type, TensorType::Q4_0);

  // qwen3 keeps transformers' q/k order; each quantized matrix is ggml's Q4_0 of the weights.
  for (const std::string& name : {std::string("model.layers.1.self_attn.q_proj.weight"),
                                  std::string("model.embed_tokens.weight")}) {
    const Tensor w = SafetensorsModel::open((dir / "model").string()).tensor(name);
    const PackedTensor blocks = quant::quantize(ops::cast(w, DType::F32), {QuantScheme::Q4_0});
    const gguf::TensorInfo& t = f.tensor(gguf_tensor_name(name));
    ASSERT_EQ(t.bytes, blocks.parts[0].nbytes());
    EXPECT_EQ(t.bytes, static_cast<uint64_t>(w.numel() / 32 * 18));
    EXPECT_EQ(std::memcmp(f.data(t).data(), blocks.parts[0].data(), t.bytes), 0) << name;
  }
  EXPECT_EQ(decoded(f, "blk.1.attn_k_norm.weight"), source_values(dir / "model", "model.layers.1.self_attn.k_norm.weight"));
}

TEST(GgufExport, CheckpointWithTheByteTokenizerThroughTheCli) {
  const fs::path dir = temp_dir();
  const std::string train = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                            "/README.md --set train.steps=2 --set checkpoint.dir=" + (dir / "ckpt").string() +
                            " --set log.metrics_file=" + (dir / "metrics.jsonl").string();
  auto r = testing_util::run_tessera(train);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ckpt = (dir / "ckpt/step-2").string(), out = (dir / "tiny.gguf").string();
  r = testing_util::run_tessera("export --checkpoint " + ckpt + " --format gguf --quant q8_0 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("written as f16"), std::string::npos) << "intermediate 176 is not whole blocks: " << r.output;

  const gguf::File f = gguf::File::open(out);
  EXPECT_EQ(f.at("tokenizer.ggml.pre").as_string(), "default");
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").array_size(), 259u);
  EXPECT_EQ(f.at("general.file_type").as_int(), 7);
  // The master weights, Q8_0-quantized.
  checkpoint::StateFile state(ckpt + "/state.h5", false);
  const ParamSpec up{"model.layers.1.mlp.up_proj.weight", {176, 64}};
  Tensor master = Tensor::empty({176, 64}, DType::F32);
  state.read("master", up, 0, 176 * 64, master.data_as<float>());
  const PackedTensor q8 = quant::quantize(master, {QuantScheme::Q8_0});
  EXPECT_EQ(decoded(f, "blk.1.ffn_up.weight"), quant::dequantize(q8, DType::F32).to_vector<float>());

  r = testing_util::run_tessera("export --checkpoint " + ckpt + " --format gguf --out " + out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("exists (nothing was overwritten)"), std::string::npos) << r.output;
  r = testing_util::run_tessera("export --format gguf --out " + out + "2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("give one of --checkpoint and --model"), std::string::npos) << r.output;
  r = testing_util::run_tessera("export --model " + ckpt + " --format gguf --quant q5_k --out " + out + "3");
  EXPECT_NE(r.exit_code, 0);
}
