// Prometheus metrics: counters, gauges and histograms, with labels, in a registry that writes
// Prometheus' text exposition format (version 0.0.4). Thread-safe; no HTTP here: whoever serves
// `/metrics` asks the registry for its text (engine/server/http_listener.h does for the server and
// the trainer).
//
//     metrics::Registry registry;
//     auto& done = registry.counter("tessera_requests_total", "Requests answered", {{"status", "200"}});
//     done.inc();
//     auto& ttft = registry.histogram("tessera_time_to_first_token_seconds", "...", metrics::latency_buckets());
//     ttft.observe(0.042);
//     registry.text();   // "# HELP tessera_requests_total Requests answered\n# TYPE ... counter\n..."
//
// A metric is found by name and labels; asking again returns the same object (references stay valid
// for the registry's life). One name has one type, help text and (for histograms) bucket bounds.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tessera::metrics {

// Label names and values, in the order they are written.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A value that only goes up (reset only by a restart).
class Counter {
 public:
  void inc(double amount = 1.0);  // amount >= 0
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into cumulative buckets (upper bounds, ascending; +Inf is implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;  // consistent: buckets, sum and count from the same moment

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), the last one above every bound
  double sum_ = 0;
};

// Bucket bounds from 1 ms to 60 s, for request and token latencies.
std::vector<double> latency_buckets();

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each throws tessera::Error on an invalid name or label, or a name already used differently.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                       const Labels& labels = {});

  // Called at the start of every text(): refresh gauges that mirror something else (engine
  // statistics, GPU memory) only when someone looks.
  void on_collect(std::function<void()> refresh);

  // Every metric in Prometheus' text format, families in registration order, each series in the
  // order it was first asked for.
  std::string text() const;

 private:
  struct Family;
  Family& family(const std::string& name, const std::string& help, int type, const std::vector<double>* bounds);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> collectors_;
};

// The content type of text(), for the HTTP response.
inline constexpr const char* kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace tessera::metrics
