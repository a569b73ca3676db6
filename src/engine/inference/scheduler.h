// Continuous batching on one thread: the sequences waiting and running, and step(), which packs
// one model step (a decode token for each running sequence, then prefill chunks, up to
// max_batch_tokens and max_batch_size), runs it, samples and reports events. Admission is first
// come, first served while KV blocks are free; when a running sequence cannot get the block its
// next token needs, the most recently admitted one is preempted: its blocks go back to the pool
// and it waits at the head of the queue to be recomputed from its prompt and the tokens it already
// produced (same seed and token indices, so its output does not change). Generator drives it.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/inference/generator.h"
#include "engine/inference/sampler.h"
#include "engine/inference/text_stream.h"
#include "model/inference_model.h"
#include "model/kv_cache.h"

namespace tessera::inference {

using Clock = std::chrono::steady_clock;

struct Sequence {
  uint64_t id = 0;
  Request request;
  EventCallback on_event;
  uint64_t seed = 0;
  int32_t adapter = -1;  // request.adapter's index in the model's AdapterBank (-1: the base); set by add()
  Clock::time_point submitted;
  double queue_seconds = -1;
  std::vector<int32_t> generated;
  BlockTable blocks;
  int64_t cached = 0;  // tokens of prompt + generated whose keys and values are in the cache
  bool cancelled = false;
  std::optional<TextStream> text;  // with a tokenizer: the generated text, a token at a time

  int64_t tokens() const { return static_cast<int64_t>(request.prompt.size() + generated.size()); }
  int32_t token_at(int64_t i) const;
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<InferenceModel> model, std::shared_ptr<const tok::Tokenizer> tokenizer,
            const GeneratorOptions& options);

  const InferenceModel& model() const { return *model_; }
  const tok::Tokenizer* tokenizer() const { return tokenizer_.get(); }
  int64_t context_length() const { return context_length_; }
  // Throws Error naming the field for a request that can never run.
  void validate(const Request& request) const;

  void add(std::unique_ptr<Sequence> sequence);  // to the back of the queue
  void cancel(uint64_t id);                      // ends at the next step
  void cancel_all();                             // ends everything now (stop())
  bool idle() const { return waiting_.empty() && running_.empty(); }
  int64_t in_flight() const { return static_cast<int64_t>(waiting_.size() + running_.size()); }
  // One model step; false when there was nothing to run.
  bool step();
  GeneratorStats stats() const;
  KvCache& cache() { return cache_; }

 private:
  void finish(Sequence& s, FinishReason reason, Event event, const std::string& error = "");
  void preempt(std::unique_ptr<Sequence> s);
  // Each logit row's token: the device's pick, or drawn on the host from the row's logits.
  std::vector<Sample> pick_tokens(const std::vector<Sequence*>& sampled, const StepOutput& out) const;
  // Appends a picked token: its event, and whether it ends the sequence.
  bool accept_token(Sequence& s, const Sample& picked);

  std::shared_ptr<InferenceModel> model_;
  std::shared_ptr<const tok::Tokenizer> tokenizer_;
  GeneratorOptions options_;
  KvCache cache_;
  int64_t context_length_ = 0;
  std::vector<int32_t> eos_ids_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  GeneratorStats totals_;
};

// KV blocks for the options: kv_cache_blocks, or kv_cache_gb, or kv_cache_fraction of the free
// memory, and never more than max_batch_size full-length sequences need.
int64_t kv_cache_blocks(const InferenceModel& model, const GeneratorOptions& options);

}  // namespace tessera::inference
