// `tessera eval`'s computation (engine/evaluation.h) on 2 and 3 ranks: the ranks split the
// sequences, and the loss and token count are the same, bit for bit, as one rank's, batch by batch.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "comm/world.h"
#include "engine/evaluation.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"
#include "model/transformer_params.h"

using namespace tessera;

namespace {

ModelConfig byte_model() {
  return ModelConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", 259}, {"hidden_size", 32}, {"intermediate_size", 48},
                     {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                     {"max_position_embeddings", 64}, {"tie_word_embeddings", true}},
      "byte model");
}

ModelParams random_params(const ModelConfig& config) {
  ModelParams params = make_params(config, DType::F32, Device::cpu(), false);
  uint64_t offset = 0;
  for_each_param(config, params, [&](const std::string& name, Tensor& t) {
    const bool norm = name.find("norm") != std::string::npos;
    ops::fill_normal(t, 7, offset, norm ? 1.0f : 0.0f, 0.1f);
    offset += static_cast<uint64_t>(t.numel());
  });
  return params;
}

}  // namespace

TEST(Evaluation, TheSameOnAnyNumberOfRanks) {
  const World& world = World::get();
  auto host = make_mpi_communicator(world);
  const ModelConfig config = byte_model();
  const ModelParams params = random_params(config);
  WholeParams source(params, nullptr);
  for (const char* file : {"text.jsonl", "completion.jsonl", "chat.jsonl"}) {
    data::DataOptions options;
    options.eval = std::string(TESSERA_TEST_DATA) + "/jsonl/" + file;
    options.seq_len = 16;
    options.chat_template = "chatml";
    const data::DataLoader data(options, tok::Tokenizer::bytes(), 0, data::Split::eval);
    ASSERT_GT(data.num_sequences(), 2 * world.size) << file;  // every rank has batches
    for (int64_t batch_size : {1, 3}) {
      const EvalTotals got = evaluate_dataset(config, source, data, batch_size, *host, world, Device::cpu());
      // One rank's answer: every batch here, in order, each sum rounded to f32 as the slots hold it.
      double loss_sum = 0;
      int64_t targets = 0, expected_targets = 0;
      for (int64_t first = 0; first < data.num_sequences(); first += batch_size) {
        TokenBatch b = make_token_batch(data.sequences(first, std::min(data.num_sequences(), first + batch_size)),
                                        Device::cpu());
        b.first_token = first * data.seq_len();
        const EvalTotals t = eval_loss(config, source, {b});
        loss_sum += static_cast<float>(t.loss_sum);
        targets += t.targets;
      }
      for (const data::Sequence& s : data.sequences(0, data.num_sequences()))
        for (int32_t label : s.labels) expected_targets += label != data::kIgnoreLabel;
      EXPECT_EQ(got.loss_sum, loss_sum) << file << " batch " << batch_size << " on " << world.size << " ranks";
      EXPECT_EQ(got.targets, targets) << file;
      EXPECT_EQ(got.targets, expected_targets) << file;  // what the trainer counts: labels that are not -100
      EXPECT_GT(got.loss(), 4.0) << file;                 // a random model: about ln(259) = 5.56
      EXPECT_LT(got.loss(), 7.0) << file;
      EXPECT_NEAR(got.perplexity(), std::exp(got.loss()), 1e-9 * got.perplexity());
    }
  }
}
