#include "engine/inference/generator.h"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/env_switch.h"
#include "core/log.h"
#include "engine/inference/event_relay.h"
#include "engine/inference/scheduler.h"

namespace tessera::inference {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "";
}

bool relay_events_by_default() {
  // On unless 0: on the H200 (session 9) serving at 256 req/s reached 189 req/s with it, 173 without.
  return env_switch("TESSERA_EVENT_RELAY", true);
}

struct Generator::State {
  State(std::shared_ptr<InferenceModel> model, std::shared_ptr<const tok::Tokenizer> tokenizer,
        const GeneratorOptions& o)
      : options(o), scheduler(std::move(model), std::move(tokenizer), o) {
    if (o.worker_thread && o.relay_events) relay.emplace();
  }

  GeneratorOptions options;
  Scheduler scheduler;  // touched by the worker only (or the run_until_idle caller)
  mutable std::mutex mu;
  std::condition_variable wake, finished;
  std::vector<std::unique_ptr<Sequence>> incoming;
  std::vector<uint64_t> cancels;
  bool accepting = true, stopping = false, scheduler_idle = true;
  uint64_t next_id = 1;
  int64_t in_flight = 0;  // submitted, not yet finished
  GeneratorStats snapshot;
  std::thread worker;
  std::optional<EventRelay> relay;  // with relay_events: delivers each step's events while the next computes

  // Moves what arrived into the scheduler and runs one step; false when there was nothing to do.
  bool turn() {
    std::vector<std::unique_ptr<Sequence>> arrived;
    std::vector<uint64_t> cancelled;
    {
      std::lock_guard lock(mu);
      arrived.swap(incoming);
      cancelled.swap(cancels);
    }
    for (auto& s : arrived) scheduler.add(std::move(s));
    for (uint64_t id : cancelled) scheduler.cancel(id);
    const bool ran = scheduler.step() || !arrived.empty() || !cancelled.empty();
    if (relay) relay->hand_over();
    std::lock_guard lock(mu);
    snapshot = scheduler.stats();
    scheduler_idle = scheduler.idle();
    return ran;
  }

  void run() {
    for (;;) {
      {
        std::unique_lock lock(mu);
        wake.wait(lock, [&] { return stopping || !incoming.empty() || !cancels.empty() || !scheduler_idle; });
        if (stopping) break;
      }
      try {
        turn();
      } catch (const std::exception& e) {  // a scheduler bug must not terminate the process
        spdlog::error("generate: the engine failed: {}; cancelling every request", e.what());
        scheduler.cancel_all();
        if (relay) relay->hand_over();
      }
    }
    shut_down();
  }

  void shut_down() {
    std::vector<std::unique_ptr<Sequence>> arrived;
    {
      std::lock_guard lock(mu);
      arrived.swap(incoming);
    }
    for (auto& s : arrived) scheduler.add(std::move(s));
    scheduler.cancel_all();
    if (relay) {
      relay->hand_over();
      relay->flush();
    }
    std::lock_guard lock(mu);
    snapshot = scheduler.stats();
    scheduler_idle = true;
  }

  std::unique_ptr<Sequence> make_sequence(Request request, EventCallback on_event) {
    scheduler.validate(request);
    auto s = std::make_unique<Sequence>();
    s->seed = request.sampling.seed ? *request.sampling.seed : std::random_device{}() * 0x100000001ull;
    s->request = std::move(request);
    s->submitted = Clock::now();
    // The last event also retires the request from the in-flight count (drain waits on it).
    auto deliver = std::make_shared<const EventCallback>([this, cb = std::move(on_event)](const Event& e) {
      try {
        if (cb) cb(e);
      } catch (const std::exception& ex) {  // a callback's failure must not take the engine down
        spdlog::error("generate: the event callback of request {} failed: {}", e.request, ex.what());
      }
      if (e.finish == FinishReason::None) return;
      std::lock_guard lock(mu);
      --in_flight;
      finished.notify_all();
    });
    s->on_event = [this, deliver](const Event& e) {
      if (relay) relay->add(deliver, e);
      else (*deliver)(e);
    };
    return s;
  }
};

Generator::Generator(std::shared_ptr<InferenceModel> model, std::shared_ptr<const tok::Tokenizer> tokenizer,
                     const GeneratorOptions& options)
    : state_(std::make_unique<State>(std::move(model), std::move(tokenizer), options)) {
  state_->snapshot = state_->scheduler.stats();
  if (options.worker_thread) state_->worker = std::thread([s = state_.get()] { s->run(); });
}

Generator::~Generator() { stop(); }

uint64_t Generator::submit(Request request, EventCallback on_event) {
  std::vector<Request> one;
  one.push_back(std::move(request));
  return submit_all(std::move(one), std::move(on_event)).front();
}

std::vector<uint64_t> Generator::submit_all(std::vector<Request> requests, EventCallback on_event) {
  State& st = *state_;
  std::vector<std::unique_ptr<Sequence>> made;
  for (Request& r : requests) made.push_back(st.make_sequence(std::move(r), on_event));  // validation: no lock
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(st.mu);
    if (!st.accepting) throw Closed();
    const int64_t queued = st.snapshot.waiting + static_cast<int64_t>(st.incoming.size());
    if (queued + static_cast<int64_t>(made.size()) > st.options.max_queue) throw QueueFull();
    for (auto& s : made) {
      s->id = st.next_id++;
      ids.push_back(s->id);
      ++st.in_flight;
      st.incoming.push_back(std::move(s));
    }
  }
  st.wake.notify_all();
  return ids;
}

void Generator::cancel(uint64_t id) {
  {
    std::lock_guard lock(state_->mu);
    state_->cancels.push_back(id);
  }
  state_->wake.notify_all();
}

GeneratorStats Generator::stats() const {
  std::lock_guard lock(state_->mu);
  GeneratorStats s = state_->snapshot;
  s.waiting += static_cast<int64_t>(state_->incoming.size());
  return s;
}

bool Generator::has_worker() const { return state_->worker.joinable(); }

int64_t Generator::context_length() const { return state_->scheduler.context_length(); }

void Generator::drain() {
  State& st = *state_;
  {
    std::lock_guard lock(st.mu);
    st.accepting = false;
  }
  if (!st.worker.joinable()) {
    run_until_idle();
    return;
  }
  std::unique_lock lock(st.mu);
  st.finished.wait(lock, [&] { return st.in_flight == 0; });
}

void Generator::stop() {
  State& st = *state_;
  {
    std::lock_guard lock(st.mu);
    st.accepting = false;
    st.stopping = true;
  }
  st.wake.notify_all();
  if (st.worker.joinable()) st.worker.join();
  else st.shut_down();
}

void Generator::run_until_idle() {
  State& st = *state_;
  TS_CHECK(!st.worker.joinable(), "run_until_idle: the generator runs its own worker thread");
  for (;;) {
    {
      std::lock_guard lock(st.mu);
      if (st.incoming.empty() && st.cancels.empty() && st.scheduler_idle) return;
    }
    st.turn();
  }
}

std::vector<Completion> generate_all(Generator& generator, std::vector<Request> requests,
                                     const EventCallback& on_event) {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<uint64_t, Completion> results;
  size_t finished = 0;
  const size_t n = requests.size();
  const std::vector<uint64_t> ids = generator.submit_all(std::move(requests), [&](const Event& e) {
    if (on_event) on_event(e);
    std::lock_guard lock(mu);
    Completion& c = results[e.request];
    if (e.token >= 0) {
      c.ids.push_back(e.token);
      c.logprobs.push_back(e.logprob);
    }
    c.text += e.text;
    if (e.finish != FinishReason::None) {
      c.finish = e.finish;
      c.error = e.error;
      ++finished;
      cv.notify_all();
    }
  });
  {
    std::unique_lock lock(mu);
    if (finished < n) {
      lock.unlock();
      if (!generator.has_worker()) generator.run_until_idle();
      lock.lock();
      cv.wait(lock, [&] { return finished == n; });
    }
  }
  std::vector<Completion> out;
  for (uint64_t id : ids) out.push_back(std::move(results[id]));
  return out;
}

}  // namespace tessera::inference
