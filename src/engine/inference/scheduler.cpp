#include "engine/inference/scheduler.h"

#include <algorithm>
#include <exception>
#include <unordered_set>

#include "core/error.h"
#include "core/free_memory.h"
#include "core/log.h"
#include "engine/inference/sampler.h"
#include "engine/inference/text_stream.h"

namespace tessera::inference {

namespace {

constexpr int64_t kMaxTopLogprobs = 20;
constexpr int64_t kCpuCacheBytesCap = int64_t(4) << 30;

}  // namespace

int32_t Sequence::token_at(int64_t i) const {
  const int64_t p = static_cast<int64_t>(request.prompt.size());
  return i < p ? request.prompt[i] : generated[i - p];
}

int64_t kv_cache_blocks(const InferenceModel& model, const GeneratorOptions& o) {
  TS_CHECK(o.block_size > 0, "block_size must be positive, got {}", o.block_size);
  if (o.kv_cache_blocks > 0) return o.kv_cache_blocks;
  const ModelConfig& c = model.config();
  const DType dtype = model.cache_dtype();
  const int64_t max_len = o.max_seq_len > 0 ? o.max_seq_len : c.max_position_embeddings;
  const int64_t enough = std::max<int64_t>(1, o.max_batch_size) * KvCache::blocks_needed(max_len, o.block_size);
  int64_t bytes = 0;
  if (o.kv_cache_gb > 0) {
    bytes = static_cast<int64_t>(o.kv_cache_gb * double(int64_t(1) << 30));
  } else {
    TS_CHECK(o.kv_cache_fraction > 0 && o.kv_cache_fraction <= 1, "kv_cache_fraction must be in (0, 1], got {}",
             o.kv_cache_fraction);
    bytes = static_cast<int64_t>(o.kv_cache_fraction * double(free_memory_bytes(model.device())));
    if (model.device().is_cpu()) bytes = std::min(bytes, kCpuCacheBytesCap);
    return std::max<int64_t>(1, std::min(enough, KvCache::blocks_for_bytes(c, o.block_size, dtype, bytes)));
  }
  const int64_t blocks = KvCache::blocks_for_bytes(c, o.block_size, dtype, bytes);
  TS_CHECK(blocks > 0, "kv_cache_gb {} holds no KV block ({} bytes each)", o.kv_cache_gb,
           KvCache::block_bytes(c, o.block_size, dtype));
  return blocks;
}

Scheduler::Scheduler(std::shared_ptr<InferenceModel> model, std::shared_ptr<const tok::Tokenizer> tokenizer,
                     const GeneratorOptions& options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(options),
      cache_(model_->config(), kv_cache_blocks(*model_, options), options.block_size, model_->cache_dtype(),
             model_->device()) {
  TS_CHECK(options.max_batch_size > 0, "max_batch_size must be positive, got {}", options.max_batch_size);
  TS_CHECK(options.max_batch_tokens > 0, "max_batch_tokens must be positive, got {}", options.max_batch_tokens);
  const ModelConfig& c = model_->config();
  const int64_t max_len = options.max_seq_len > 0 ? options.max_seq_len : c.max_position_embeddings;
  context_length_ = std::min(max_len, cache_.num_blocks() * cache_.block_size());
  for (int64_t id : c.eos_token_ids) eos_ids_.push_back(static_cast<int32_t>(id));
  if (tokenizer_ && tokenizer_->eos_id()) eos_ids_.push_back(*tokenizer_->eos_id());
  spdlog::info("generate: KV cache of {} blocks x {} tokens ({:.1f} MiB), context {} tokens", cache_.num_blocks(),
               cache_.block_size(),
               double(cache_.num_blocks() * KvCache::block_bytes(c, cache_.block_size(), model_->cache_dtype())) /
                   1048576.0,
               context_length_);
}

void Scheduler::validate(const Request& r) const {
  const int64_t n = static_cast<int64_t>(r.prompt.size());
  TS_CHECK(n > 0, "prompt: no tokens");
  TS_CHECK(n < context_length_, "prompt: {} tokens leave no room to generate (context {} tokens)", n, context_length_);
  const int64_t vocab = model_->config().vocab_size;
  for (int64_t i = 0; i < n; ++i)
    TS_CHECK(r.prompt[i] >= 0 && r.prompt[i] < vocab, "prompt: token {} at {} is outside the vocabulary of {}",
             r.prompt[i], i, vocab);
  TS_CHECK(r.max_new_tokens > 0, "max_new_tokens must be positive, got {}", r.max_new_tokens);
  TS_CHECK(r.top_logprobs >= -1 && r.top_logprobs <= kMaxTopLogprobs, "top_logprobs must be in [0, {}], got {}",
           kMaxTopLogprobs, r.top_logprobs);
  TS_CHECK(r.stop.empty() || tokenizer_, "stop strings need a tokenizer (the model folder has none)");
  for (const std::string& s : r.stop) TS_CHECK(!s.empty(), "stop: an empty stop string");
  TS_CHECK(r.adapter.empty() || model_->adapters(), "adapter '{}': this engine serves the base model only", r.adapter);
  if (!r.adapter.empty()) model_->adapters()->index(r.adapter);  // an Error naming an adapter not loaded
  check_sampling(r.sampling);
}

void Scheduler::add(std::unique_ptr<Sequence> s) {
  s->adapter = model_->adapters() ? model_->adapters()->index(s->request.adapter) : -1;
  if (tokenizer_) s->text.emplace(*tokenizer_, s->request.stop);
  waiting_.push_back(std::move(s));
}

void Scheduler::cancel(uint64_t id) {
  for (auto& s : waiting_)
    if (s->id == id) s->cancelled = true;
  for (auto& s : running_)
    if (s->id == id) s->cancelled = true;
}

void Scheduler::cancel_all() {
  for (auto& s : running_) finish(*s, FinishReason::Cancelled, {});
  for (auto& s : waiting_) finish(*s, FinishReason::Cancelled, {});
  running_.clear();
  waiting_.clear();
}

void Scheduler::finish(Sequence& s, FinishReason reason, Event e, const std::string& error) {
  cache_.release(s.blocks);
  s.cached = 0;
  e.request = s.id;
  e.finish = reason;
  e.error = error;
  e.prompt_tokens = static_cast<int64_t>(s.request.prompt.size());
  e.generated_tokens = static_cast<int64_t>(s.generated.size());
  e.queue_seconds = s.queue_seconds;
  s.on_event(e);
}

void Scheduler::preempt(std::unique_ptr<Sequence> s) {
  cache_.release(s->blocks);
  s->cached = 0;
  ++totals_.preemptions;
  spdlog::debug("generate: request {} preempted (KV pool full); it will be recomputed", s->id);
  waiting_.push_front(std::move(s));
}

bool Scheduler::accept_token(Sequence& s, const Sample& picked) {
  const Request& r = s.request;
  s.generated.push_back(picked.token);
  ++totals_.generated_tokens;
  FinishReason reason = FinishReason::None;
  const bool eos = !r.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), picked.token) != eos_ids_.end();
  if (eos || std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), picked.token) != r.stop_token_ids.end())
    reason = FinishReason::Stop;
  else if (static_cast<int64_t>(s.generated.size()) >= r.max_new_tokens || s.tokens() >= context_length_)
    reason = FinishReason::Length;

  Event e;
  e.request = s.id;
  e.token = picked.token;
  e.logprob = picked.logprob;
  try {
    if (s.text) {
      if (r.top_logprobs >= 0) e.token_text = tokenizer_->decode({picked.token}, false);
      TextUpdate u = s.text->push(picked.token, reason != FinishReason::None);
      e.text = std::move(u.text);
      if (u.stopped) reason = FinishReason::Stop;
    }
    if (r.top_logprobs >= 0)
      for (const auto& [id, lp] : picked.top)
        e.top_logprobs.push_back({id, tokenizer_ ? tokenizer_->decode({id}, false) : std::string(), lp});
  } catch (const Error& ex) {  // an id the tokenizer cannot decode ends this request, not the batch
    finish(s, FinishReason::Error, std::move(e), ex.what());
    return true;
  }
  e.prompt_tokens = static_cast<int64_t>(r.prompt.size());
  e.generated_tokens = static_cast<int64_t>(s.generated.size());
  e.queue_seconds = s.queue_seconds;
  if (reason != FinishReason::None) {
    finish(s, reason, std::move(e));
    return true;
  }
  s.on_event(e);
  return false;
}

std::vector<Sample> Scheduler::pick_tokens(const std::vector<Sequence*>& sampled, const StepOutput& out) const {
  std::vector<Sample> picks(sampled.size());
  std::vector<size_t> host_rows;  // rows with penalties or top logprobs: drawn here from their logits
  for (size_t r = 0; r < sampled.size(); ++r) {
    if (out.logits_row[r] >= 0) {
      host_rows.push_back(r);
    } else {
      picks[r].token = out.token[r];
      picks[r].logprob = out.logprob[r];
    }
  }
  const float* rows = out.logits.data_as<float>();
  const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
  std::vector<std::exception_ptr> failed(host_rows.size());
  // Rows are independent (each its own seed and counter): in parallel when there are several.
#pragma omp parallel for schedule(dynamic) if (host_rows.size() > 1)
  for (size_t i = 0; i < host_rows.size(); ++i) {
    const size_t r = host_rows[i];
    const Sequence& s = *sampled[r];
    try {
      picks[r] = sample_token({rows + out.logits_row[r] * static_cast<int64_t>(vocab), vocab}, s.request.sampling,
                              s.seed, s.generated.size(), s.request.prompt, s.generated,
                              std::max<int64_t>(s.request.top_logprobs, 0));
    } catch (...) {
      failed[i] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  return picks;
}

bool Scheduler::step() {
  // Cancelled requests end first.
  auto drop_cancelled = [&](auto& list) {
    for (auto it = list.begin(); it != list.end();) {
      if ((*it)->cancelled) {
        finish(**it, FinishReason::Cancelled, {});
        it = list.erase(it);
      } else {
        ++it;
      }
    }
  };
  drop_cancelled(running_);
  drop_cancelled(waiting_);
  if (idle()) return false;

  struct Part {
    Sequence* s;
    int64_t n;
  };
  std::vector<Part> parts;
  std::unordered_set<const Sequence*> in_batch;
  int64_t budget = options_.max_batch_tokens;
  // Blocks for n more tokens of running_[i], preempting the newest running sequences outside the
  // batch (i follows the sequence when an earlier one goes); false: it waits.
  auto reserve_running = [&](size_t& i, int64_t n) {
    Sequence* s = running_[i].get();
    while (!cache_.reserve(s->blocks, s->cached + n)) {
      size_t victim = running_.size();
      for (size_t j = running_.size(); j-- > 0;)
        if (j != i && !in_batch.count(running_[j].get())) {
          victim = j;
          break;
        }
      if (victim == running_.size()) {
        if (!parts.empty()) return false;  // others progress and free blocks
        TS_CHECK(running_.size() == 1, "generate: the KV pool cannot hold the running sequences");
        throw Error("generate: a sequence does not fit in the KV pool alone");
      }
      std::unique_ptr<Sequence> v = std::move(running_[victim]);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(victim));
      preempt(std::move(v));
      if (victim < i) --i;
    }
    return true;
  };
  // Decode tokens first, then prefill chunks of sequences already running.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
      Sequence* s = running_[i].get();
      const int64_t pending = s->tokens() - s->cached;
      if (in_batch.count(s) || pending <= 0 || (pass == 0) != (pending == 1)) continue;
      const int64_t n = std::min(pending, budget);
      if (!reserve_running(i, n)) continue;
      parts.push_back({s, n});
      in_batch.insert(s);
      budget -= n;
    }
  }
  // New (or preempted) requests, first come first served, while blocks and budget allow.
  while (!waiting_.empty() && budget > 0 && static_cast<int64_t>(running_.size()) < options_.max_batch_size) {
    Sequence* s = waiting_.front().get();
    const int64_t n = std::min(s->tokens(), budget);
    if (!cache_.reserve(s->blocks, n)) break;
    if (s->queue_seconds < 0)
      s->queue_seconds = std::chrono::duration<double>(Clock::now() - s->submitted).count();
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    parts.push_back({s, n});
    in_batch.insert(s);
    budget -= n;
  }
  if (parts.empty()) {
    TS_CHECK(!running_.empty(), "generate: the KV pool ({} blocks) cannot admit the next request",
             cache_.num_blocks());
    return false;
  }

  StepInput in;
  std::vector<Sequence*> sampled;
  for (size_t p = 0; p < parts.size(); ++p) {
    Sequence& s = *parts[p].s;
    for (int64_t k = 0; k < parts[p].n; ++k) {
      in.ids.push_back(s.token_at(s.cached + k));
      in.seq.push_back(static_cast<int32_t>(p));
      in.pos.push_back(static_cast<int32_t>(s.cached + k));
    }
    in.block_tables.push_back(&s.blocks);
    in.adapter.push_back(s.adapter);
    if (s.cached + parts[p].n == s.tokens()) {
      in.logit_rows.push_back(static_cast<int64_t>(in.ids.size()) - 1);
      const bool on_device = sample_on_device(s.request.sampling, s.request.top_logprobs);
      in.full_logits.push_back(!on_device);
      in.sampling.push_back(on_device ? sampling_row(s.request.sampling, s.seed, s.generated.size()) : SamplingRow{});
      sampled.push_back(&s);
    }
  }
  std::unordered_set<const Sequence*> done;
  try {
    const StepOutput out = model_->run(in, cache_);
    ++totals_.steps;
    for (const Part& p : parts) {
      p.s->cached += p.n;
      if (p.s->generated.empty()) totals_.prompt_tokens += p.n;
    }
    const std::vector<Sample> picks = pick_tokens(sampled, out);
    for (size_t r = 0; r < sampled.size(); ++r)
      if (accept_token(*sampled[r], picks[r])) done.insert(sampled[r]);
  } catch (const std::exception& ex) {
    spdlog::error("generate: a step of {} sequences failed: {}", parts.size(), ex.what());
    for (const Part& p : parts) {
      if (done.count(p.s)) continue;
      finish(*p.s, FinishReason::Error, {}, ex.what());
      done.insert(p.s);
    }
  }
  std::erase_if(running_, [&](const auto& s) { return done.count(s.get()) > 0; });
  return true;
}

GeneratorStats Scheduler::stats() const {
  GeneratorStats s = totals_;
  s.running = static_cast<int64_t>(running_.size());
  s.waiting = static_cast<int64_t>(waiting_.size());
  s.kv_blocks_total = cache_.num_blocks();
  s.kv_blocks_used = cache_.used_blocks();
  s.kv_cache_usage = double(s.kv_blocks_used) / double(s.kv_blocks_total);
  return s;
}

}  // namespace tessera::inference
