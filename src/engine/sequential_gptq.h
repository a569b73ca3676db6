// Sequential GPTQ over a whole model, one layer in memory at a time: calibration sequences go
// through the embedding, then through each layer in turn; the inputs of the layer's projections
// (the normed input for q/k/v, the attention output for o, the post-attention norm for gate/up,
// the MLP activation for down) give each input one Hessian H = 2 X^T X / n, accumulated on the
// model's device; every selected projection is quantized by quant::gptq_quantize against its
// Hessian, and the layer's outputs are recomputed with the quantized weights before the next
// layer sees them. An untied lm_head is quantized against the final norm's outputs the same way;
// embed_tokens (and a tied lm_head, the same tensor) is a lookup and gets round-to-nearest.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/export_source.h"
#include "engine/quant_targets.h"
#include "model/token_batch.h"
#include "model/transformer.h"
#include "quant/gptq.h"

namespace tessera {

struct GptqCalibration {
  std::string file;          // JSONL (text, prompt/completion or chat) or a text file, tokenized by the model's tokenizer
  int64_t samples = 128;     // packed sequences taken from its start
  int64_t seq_len = 2048;    // capped by the model's max_position_embeddings
  quant::GptqOptions gptq;
};

class SequentialGptq {
 public:
  // Tokenizes the calibration file and embeds its sequences on `device`, computing in `dtype`
  // (f32 on the CPU). Errors name the file (missing, empty, no tokenizer to read it with).
  SequentialGptq(const ExportSource& source, const QuantTargets& targets, const GptqCalibration& calibration,
                 Device device, DType dtype);
  ~SequentialGptq();

  // The packed form of the selected parameter `param` whose fp32 weights are `weight`. Asked in
  // the source's parameter order (layer by layer), as the export writes them.
  PackedTensor quantize(const ParamSpec& param, const Tensor& weight);

 private:
  void run_layer(int64_t layer);  // quantizes its selected projections, moves hidden_ past it
  PackedTensor quantize_lm_head(const Tensor& weight);
  Tensor device_tensor(const ParamSpec& param) const;

  const ExportSource& source_;
  QuantTargets targets_;
  GptqCalibration calibration_;
  Device device_;
  DType dtype_;
  RopeTable rope_;
  std::vector<TokenBatch> batches_;
  std::vector<Tensor> hidden_;  // each batch's activations entering layer next_layer_
  int64_t next_layer_ = 0;
  int64_t tokens_ = 0;
  std::map<std::string, PackedTensor> ready_;  // the quantized projections of the last layer run
};

}  // namespace tessera
