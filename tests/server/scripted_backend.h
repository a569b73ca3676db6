// A stand-in engine for protocol tests: the prompt's bytes are its token ids, and it answers by
// repeating `reply` one character per token on a thread of its own (as the Generator's scheduler
// thread would), honouring max_new_tokens, stop strings and cancel().
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "engine/server/backend.h"

namespace tessera::testing_util {

class ScriptedBackend : public server::Backend {
 public:
  std::string reply = "hello world";
  std::chrono::milliseconds per_token{0};
  int64_t context = 256;
  bool queue_full = false;
  std::string fail_with;  // an error event instead of tokens

  ~ScriptedBackend() override {
    for (auto& t : threads_) t.join();
  }

  std::vector<int32_t> encode(const std::string& text) const override {
    if (text.find('\x01') != std::string::npos) throw Error("the prompt holds a byte the tokenizer refuses");
    return std::vector<int32_t>(text.begin(), text.end());
  }
  std::vector<int32_t> encode_chat(const std::vector<server::ChatMessage>& messages) const override {
    std::string text;
    for (const auto& m : messages) text += m.role + ": " + m.content + "\n";
    return encode(text + "assistant: ");
  }
  uint64_t submit(const server::GenerationRequest& request,
                  std::function<void(const server::TokenEvent&)> on_event) override {
    if (queue_full) throw server::QueueFull();
    std::lock_guard lock(mutex_);
    const uint64_t id = ++next_id_;
    submitted.push_back(request);
    threads_.emplace_back([this, id, request, on_event] { run(id, request, on_event); });
    return id;
  }
  void cancel(uint64_t id) override {
    std::lock_guard lock(mutex_);
    cancelled_.insert(id);
  }
  server::EngineStats stats() const override { return {running.load(), 0, 0.5}; }
  int64_t context_length() const override { return context; }

  bool was_cancelled(uint64_t id) {
    std::lock_guard lock(mutex_);
    return cancelled_.count(id) > 0;
  }
  std::vector<server::GenerationRequest> submitted;
  std::atomic<int64_t> running{0};

 private:
  void run(uint64_t id, server::GenerationRequest request, std::function<void(const server::TokenEvent&)> on_event) {
    ++running;
    server::TokenEvent e;
    e.prompt_tokens = static_cast<int64_t>(request.prompt.size());
    e.queue_seconds = 0.001;
    if (!fail_with.empty()) {
      e.finish_reason = "error", e.error = fail_with;
      on_event(e);
      --running;
      return;
    }
    std::string text;
    for (int64_t i = 0;; ++i) {
      std::this_thread::sleep_for(per_token);
      if (was_cancelled(id)) {
        e.text.clear(), e.token.clear(), e.top_logprobs.clear();
        e.finish_reason = "cancelled", e.generated_tokens = i;
        break;
      }
      const char c = reply[i % reply.size()];
      text += c;
      e.text = std::string(1, c), e.token = e.text, e.logprob = -0.5, e.generated_tokens = i + 1;
      if (request.top_logprobs > 0) e.top_logprobs = {{e.token, -0.5}, {"?", -1.5}};
      bool stop = false;
      for (const auto& s : request.stop)
        if (text.ends_with(s)) stop = true;
      if (stop) {
        e.text.clear(), e.finish_reason = "stop";  // (a one-character stop string: nothing held back)
        break;
      }
      if (i + 1 == request.max_new_tokens) {
        e.finish_reason = "length";
        break;
      }
      on_event(e);
    }
    on_event(e);
    --running;
  }

  std::mutex mutex_;
  uint64_t next_id_ = 0;
  std::set<uint64_t> cancelled_;
  std::vector<std::thread> threads_;
};

}  // namespace tessera::testing_util
