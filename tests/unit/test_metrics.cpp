// The Prometheus registry: the exact text format, labels and escaping, histogram buckets, misuse
// as errors, and counts that add up under concurrent updates.
#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"
#include "engine/metrics/gpu_metrics.h"
#include "engine/metrics/registry.h"

using namespace tessera;

TEST(Metrics, CounterAndGaugeText) {
  metrics::Registry r;
  r.counter("tessera_prompt_tokens_total", "Prompt tokens processed").inc(12);
  auto& ok = r.counter("tessera_requests_total", "Requests by status", {{"status", "200"}});
  ok.inc();
  ok.inc();
  r.counter("tessera_requests_total", "Requests by status", {{"status", "429"}}).inc();
  r.gauge("tessera_kv_cache_usage_ratio", "KV blocks in use").set(0.25);
  EXPECT_EQ(&ok, &r.counter("tessera_requests_total", "Requests by status", {{"status", "200"}}));
  EXPECT_EQ(r.text(),
            "# HELP tessera_prompt_tokens_total Prompt tokens processed\n"
            "# TYPE tessera_prompt_tokens_total counter\n"
            "tessera_prompt_tokens_total 12\n"
            "# HELP tessera_requests_total Requests by status\n"
            "# TYPE tessera_requests_total counter\n"
            "tessera_requests_total{status=\"200\"} 2\n"
            "tessera_requests_total{status=\"429\"} 1\n"
            "# HELP tessera_kv_cache_usage_ratio KV blocks in use\n"
            "# TYPE tessera_kv_cache_usage_ratio gauge\n"
            "tessera_kv_cache_usage_ratio 0.25\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeAndInclusive) {
  metrics::Registry r;
  auto& h = r.histogram("latency_seconds", "Latency", {0.1, 1}, {{"route", "chat"}});
  for (double v : {0.05, 0.1, 0.5, 3.0}) h.observe(v);  // 0.1 falls in le="0.1": bounds are inclusive
  EXPECT_EQ(r.text(),
            "# HELP latency_seconds Latency\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{route=\"chat\",le=\"0.1\"} 2\n"
            "latency_seconds_bucket{route=\"chat\",le=\"1\"} 3\n"
            "latency_seconds_bucket{route=\"chat\",le=\"+Inf\"} 4\n"
            "latency_seconds_sum{route=\"chat\"} 3.65\n"
            "latency_seconds_count{route=\"chat\"} 4\n");
}

TEST(Metrics, EscapingAndSpecialValues) {
  metrics::Registry r;
  r.gauge("g", "a \\ help\nline", {{"path", "a\"b\\c\nd"}}).set(1.0 / 0.0);
  r.gauge("h", "").set(-1e-7);
  EXPECT_EQ(r.text(),
            "# HELP g a \\\\ help\\nline\n# TYPE g gauge\ng{path=\"a\\\"b\\\\c\\nd\"} +Inf\n"
            "# HELP h \n# TYPE h gauge\nh -1e-07\n");
}

TEST(Metrics, CollectorsRefreshBeforeText) {
  metrics::Registry r;
  int calls = 0;
  r.on_collect([&] { r.gauge("tessera_requests_running", "Running").set(++calls); });
  EXPECT_NE(r.text().find("tessera_requests_running 1\n"), std::string::npos);
  EXPECT_NE(r.text().find("tessera_requests_running 2\n"), std::string::npos);
}

TEST(Metrics, MisuseIsAnError) {
  metrics::Registry r;
  r.counter("x_total", "");
  EXPECT_THROW(r.gauge("x_total", ""), Error);
  EXPECT_THROW(r.counter("9lives", ""), Error);
  EXPECT_THROW(r.counter("ok", "", {{"bad-label", "v"}}), Error);
  EXPECT_THROW(r.histogram("h", "", {1, 1}), Error);
  EXPECT_THROW(r.histogram("h2", "", {0.5}, {{"le", "x"}}), Error);
  r.histogram("h3", "", {1, 2});
  EXPECT_THROW(r.histogram("h3", "", {1, 3}), Error);
  EXPECT_THROW(r.counter("x_total", "").inc(-1), Error);
}

TEST(Metrics, ConcurrentUpdatesAddUp) {
  metrics::Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        r.counter("c_total", "", {{"t", std::to_string(t % 2)}}).inc();
        r.histogram("h", "", metrics::latency_buckets()).observe(0.01);
        if (i % 500 == 0) r.text();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.counter("c_total", "", {{"t", "0"}}).value(), 10000);
  EXPECT_EQ(r.counter("c_total", "", {{"t", "1"}}).value(), 10000);
  const auto s = r.histogram("h", "", metrics::latency_buckets()).snapshot();
  EXPECT_EQ(s.count, 20000u);
  EXPECT_EQ(s.cumulative[3], 20000u);  // le=0.01 holds every observation
  EXPECT_EQ(s.cumulative[2], 0u);
}

TEST(Metrics, GpuSeriesOnlyWhereNvmlIs) {
  metrics::Registry r;
  const int gpus = metrics::add_gpu_metrics(r);
  const std::string text = r.text();
  if (gpus == 0) {
    EXPECT_EQ(text.find("tessera_gpu"), std::string::npos);
  } else {
    EXPECT_NE(text.find("tessera_gpu_memory_used_bytes{gpu=\"0\"} "), std::string::npos);
    EXPECT_NE(text.find("tessera_gpu_utilization_ratio{gpu=\"0\"} "), std::string::npos);
  }
}
