// The inference engine's front door: requests go into a bounded queue, a worker thread runs the
// scheduler (continuous batching over a paged KV cache, scheduler.h) one step at a time, and each
// request hears about its tokens through its own callback. A new request joins the running batch
// at the next step; long prompts are prefilled in chunks of at most max_batch_tokens; admission
// waits for free KV blocks; when the pool runs dry the newest running sequence is preempted and
// later recomputed from its prompt and the tokens it already produced.
//
// Thread safety: submit, cancel, stats, drain and stop may be called from any thread. Callbacks
// run on the worker thread (with relay_events, on a thread of their own, a step's events while
// the next step computes: event_relay.h; without a worker, on the thread in run_until_idle), in
// order; they must not block, and are never called after the event that carries a finish reason.
// engine/server's GeneratorBackend adapts this class to server::Backend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera {
class InferenceModel;
}

namespace tessera::inference {

// How the next token is chosen from a row of logits (sampler.h applies it). Filters apply in
// this order: penalties, temperature, top-k, top-p, min-p.
struct SamplingParams {
  double temperature = 1.0;  // 0: greedy (argmax; ties to the lowest id)
  double top_p = 1.0;        // (0, 1]: the smallest set of most likely tokens whose mass reaches p
  int64_t top_k = 0;         // 0: off
  double min_p = 0.0;        // [0, 1]: drop tokens below min_p x the top probability
  double repetition_penalty = 1.0;  // > 0; over prompt and generated tokens (HF's convention)
  double presence_penalty = 0.0;    // over generated tokens (OpenAI's convention)
  double frequency_penalty = 0.0;
  // Random numbers are a function of (seed, index of the generated token) only, so the output
  // does not depend on what else is in the batch. No seed: one is drawn at submission.
  std::optional<uint64_t> seed;
};

struct Request {
  std::vector<int32_t> prompt;  // token ids, not empty
  SamplingParams sampling;
  int64_t max_new_tokens = 16;
  std::vector<int32_t> stop_token_ids;  // besides the model's EOS ids
  std::vector<std::string> stop;        // stop strings: generation ends before them (needs a tokenizer)
  bool ignore_eos = false;              // EOS does not end the generation (stop_token_ids still do)
  int64_t top_logprobs = -1;            // -1: no logprobs; 0..20: the chosen token's and this many more
  std::string adapter;                  // "" for the base model (the only one for now)
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "", "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t id = 0;
  std::string text;  // the token's own text ("" without a tokenizer)
  double logprob = 0;
};

// One event per generated token, and a last one with `finish` set (it may carry a token too, or
// none: token -1).
struct Event {
  uint64_t request = 0;
  int32_t token = -1;
  std::string text;        // text that became final with this token (may be empty; "" without a tokenizer)
  std::string token_text;  // the token's own text, with Request::top_logprobs >= 0 ("" without a tokenizer)
  double logprob = 0;      // of the chosen token under the model's distribution (before filters)
  std::vector<TokenLogprob> top_logprobs;  // with Request::top_logprobs >= 0
  FinishReason finish = FinishReason::None;
  std::string error;       // with FinishReason::Error
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // including this event's token
  double queue_seconds = -1;     // from submission until the prompt was first scheduled
};

using EventCallback = std::function<void(const Event&)>;

bool relay_events_by_default();  // unless TESSERA_EVENT_RELAY=0

struct GeneratorOptions {
  int64_t max_batch_size = 64;      // sequences in one step
  int64_t max_batch_tokens = 2048;  // tokens in one step (prefill chunks + one per decoding sequence)
  int64_t max_queue = 256;          // waiting requests before submit throws QueueFull
  int64_t block_size = 16;          // tokens per KV block
  // The KV pool: kv_cache_blocks blocks when > 0 (tests); else kv_cache_gb when > 0; else
  // kv_cache_fraction of the device's free memory (CPU: of the host's available memory, at most 4 GB).
  int64_t kv_cache_blocks = 0;
  double kv_cache_gb = 0;
  double kv_cache_fraction = 0.9;
  int64_t max_seq_len = 0;  // prompt + generated tokens per sequence; 0: the model's max_position_embeddings
  bool worker_thread = true;  // false: nothing runs until run_until_idle() (tests, the CLI)
  // With the worker: callbacks on a thread of their own while the next step computes
  // (event_relay.h); on by default (TESSERA_EVENT_RELAY=0 turns it off).
  bool relay_events = relay_events_by_default();
};

struct GeneratorStats {
  int64_t running = 0;  // sequences holding KV blocks
  int64_t waiting = 0;  // queued or preempted
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  double kv_cache_usage = 0;  // used / total
  int64_t steps = 0, preemptions = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;  // since construction
};

// submit() when the queue holds max_queue requests.
class QueueFull : public Error {
 public:
  QueueFull() : Error("the request queue is full") {}
};

// submit() after drain() or stop().
class Closed : public Error {
 public:
  Closed() : Error("the generator no longer accepts requests") {}
};

class Scheduler;

class Generator {
 public:
  // tokenizer: for event text and stop strings (may be null: ids only). EOS ids come from the
  // model's config and the tokenizer.
  Generator(std::shared_ptr<InferenceModel> model, std::shared_ptr<const tok::Tokenizer> tokenizer,
            const GeneratorOptions& options);
  ~Generator();  // stop()
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Queues the request; returns its id. Throws QueueFull, Closed, or Error naming the field for a
  // request it refuses (empty prompt, ids outside the vocabulary, prompt longer than the context,
  // bad sampling parameters, stop strings without a tokenizer).
  uint64_t submit(Request request, EventCallback on_event);
  // Many requests queued at once: they all join the same step (the queue limit applies to all).
  std::vector<uint64_t> submit_all(std::vector<Request> requests, EventCallback on_event);
  // The request ends at the next step with FinishReason::Cancelled (unknown or finished ids: no-op).
  void cancel(uint64_t id);
  GeneratorStats stats() const;
  int64_t context_length() const;  // the most tokens (prompt + generated) a sequence may hold

  // Stops accepting requests and waits until every accepted one has finished.
  void drain();
  // Stops accepting, cancels everything in flight (their callbacks get Cancelled), joins the worker.
  void stop();

  // Without a worker thread: runs steps on the calling thread until nothing is left to do.
  void run_until_idle();
  bool has_worker() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A whole generation's outcome, for callers that wait for it (generate_all, the CLI, tests).
struct Completion {
  std::vector<int32_t> ids;  // generated tokens (stop strings' tokens included; text excludes them)
  std::string text;
  FinishReason finish = FinishReason::None;
  std::string error;
  std::vector<double> logprobs;  // of each generated token
};

// Runs the requests together (one batch, in the order given) to completion and returns their
// outcomes; on_event (optional) sees every event as it happens (streaming to stdout).
std::vector<Completion> generate_all(Generator& generator, std::vector<Request> requests,
                                     const EventCallback& on_event = {});

}  // namespace tessera::inference
