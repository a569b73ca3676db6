// A small HTTP listener that exposes a metrics registry: `GET /metrics` (Prometheus text) and
// `GET /health`. The trainer (log.metrics_port) and anything else that wants to be scraped use it;
// `tessera serve` serves the same two routes beside its API.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/metrics/endpoint.h"
#include "engine/metrics/registry.h"

namespace tessera::server {

// What /health answers: 200 with {"status": "ok"} when ok, else 503 with {"status": status}.
struct Health {
  bool ok = true;
  std::string status = "ok";
};

class MetricsListener : public metrics::Endpoint {
 public:
  // Binds host:port at once (port 0: any free port), so a port in use or a bad address is a
  // tessera::Error here, before any work starts; then serves on its own threads until destroyed.
  MetricsListener(const metrics::Registry& registry, const std::string& host, int port,
                  std::function<Health()> health = [] { return Health{}; });
  ~MetricsListener() override;
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  int port() const override;  // the port bound (useful with port 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::server
