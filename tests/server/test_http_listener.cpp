// The metrics listener over real loopback HTTP: /metrics serves the registry's text, /health
// follows its callback, a port in use is one clear error.
#include <gtest/gtest.h>
#include <httplib.h>

#include "core/error.h"
#include "engine/server/http_listener.h"

using namespace tessera;

TEST(MetricsListener, ServesMetricsAndHealth) {
  metrics::Registry registry;
  registry.counter("tessera_steps_total", "Steps").inc(3);
  bool ready = false;
  server::MetricsListener listener(registry, "127.0.0.1", 0, [&] { return server::Health{ready, ready ? "ok" : "loading"}; });
  ASSERT_GT(listener.port(), 0);
  httplib::Client client("127.0.0.1", listener.port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), metrics::kTextContentType);
  EXPECT_NE(metrics->body.find("tessera_steps_total 3\n"), std::string::npos);
  auto loading = client.Get("/health");
  ASSERT_TRUE(loading);
  EXPECT_EQ(loading->status, 503);
  EXPECT_EQ(loading->body, R"({"status":"loading"})");
  ready = true;
  auto ok = client.Get("/health");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto missing = client.Get("/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(MetricsListener, PortInUseIsOneClearError) {
  metrics::Registry registry;
  server::MetricsListener first(registry, "127.0.0.1", 0);
  try {
    server::MetricsListener second(registry, "127.0.0.1", first.port());
    FAIL() << "the second listener bound a port in use";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                                         ": the port is already in use");
  }
}

TEST(MetricsListener, StopsAtOnceWhenDestroyed) {
  metrics::Registry registry;
  for (int i = 0; i < 20; ++i) server::MetricsListener listener(registry, "127.0.0.1", 0);  // no hang, no leak
}
