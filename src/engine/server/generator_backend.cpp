#include "engine/server/generator_backend.h"

#include "core/log.h"

namespace tessera::server {

GeneratorBackend::GeneratorBackend(inference::Generator& generator, std::shared_ptr<const tok::Tokenizer> tokenizer,
                                   const std::string& chat_template)
    : generator_(generator), tokenizer_(std::move(tokenizer)) {
  TS_CHECK(tokenizer_, "serving needs the model's tokenizer (the model folder has none)");
  prompts_ = std::make_unique<data::DocumentEncoder>(*tokenizer_, data::Format::completion, data::ChatTemplate::chatml);
  try {
    const data::ChatTemplate t = data::resolve_chat_template(chat_template, *tokenizer_);
    chats_ = std::make_unique<data::DocumentEncoder>(*tokenizer_, data::Format::chat, t);
    spdlog::info("serve: chat template {}", data::chat_template_name(t));
  } catch (const Error& e) {
    no_chat_ = e.what();
    spdlog::warn("serve: /v1/chat/completions is off: {} (set engine.chat_template)", no_chat_);
  }
}

std::vector<int32_t> GeneratorBackend::encode(const std::string& text) const { return prompts_->prompt(text); }

std::vector<int32_t> GeneratorBackend::encode_chat(const std::vector<ChatMessage>& messages) const {
  TS_CHECK(chats_, "this model has no chat template ({})", no_chat_);
  std::vector<data::Message> m;
  m.reserve(messages.size());
  for (const ChatMessage& c : messages) m.push_back({c.role, c.content});
  return chats_->chat_prompt(m);
}

inference::Request GeneratorBackend::to_engine(const GenerationRequest& r) {
  inference::Request q;
  q.prompt = r.prompt;
  q.sampling = {.temperature = r.sampling.temperature, .top_p = r.sampling.top_p, .top_k = r.sampling.top_k,
                .min_p = r.sampling.min_p, .repetition_penalty = r.sampling.repetition_penalty,
                .presence_penalty = r.sampling.presence_penalty, .frequency_penalty = r.sampling.frequency_penalty,
                .seed = r.sampling.seed};
  q.max_new_tokens = r.max_new_tokens;
  q.stop = r.stop;
  q.ignore_eos = r.ignore_eos;
  q.top_logprobs = r.top_logprobs;
  q.adapter = r.adapter;
  return q;
}

TokenEvent GeneratorBackend::to_server(const inference::Event& e) {
  TokenEvent t;
  t.text = e.text;
  t.token = e.token_text;
  t.logprob = e.logprob;
  t.top_logprobs.reserve(e.top_logprobs.size());
  for (const inference::TokenLogprob& l : e.top_logprobs) t.top_logprobs.push_back({l.text, l.logprob});
  t.finish_reason = inference::finish_reason_name(e.finish);
  t.error = e.error;
  t.prompt_tokens = e.prompt_tokens;
  t.generated_tokens = e.generated_tokens;
  t.queue_seconds = e.queue_seconds;
  return t;
}

uint64_t GeneratorBackend::submit(const GenerationRequest& request, std::function<void(const TokenEvent&)> on_event) {
  try {
    return generator_.submit(to_engine(request),
                             [on_event = std::move(on_event)](const inference::Event& e) { on_event(to_server(e)); });
  } catch (const inference::QueueFull&) {
    throw QueueFull();
  } catch (const inference::Closed&) {
    throw Closed();
  }
}

void GeneratorBackend::cancel(uint64_t id) { generator_.cancel(id); }

EngineStats GeneratorBackend::stats() const {
  const inference::GeneratorStats s = generator_.stats();
  return {.running = s.running, .waiting = s.waiting, .kv_cache_usage = s.kv_cache_usage};
}

int64_t GeneratorBackend::context_length() const { return generator_.context_length(); }

}  // namespace tessera::server
