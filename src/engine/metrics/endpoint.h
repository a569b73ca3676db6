// How code below engine/server gets its registry served over HTTP without linking the HTTP library:
// it is handed a ServeFn (the CLI passes one that makes engine/server's MetricsListener) and holds
// the Endpoint it returns; the endpoint serves until destroyed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/metrics/registry.h"

namespace tessera::metrics {

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual int port() const = 0;  // the port bound
};

// Binds host:port at once (a port in use is a tessera::Error then) and serves GET /metrics (the
// registry's text) and GET /health.
using ServeFn = std::function<std::unique_ptr<Endpoint>(const Registry& registry, const std::string& host, int port)>;

}  // namespace tessera::metrics
