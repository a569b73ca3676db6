#include "engine/server/http_listener.h"

#include <nlohmann/json.hpp>

#include "engine/server/http_util.h"

namespace tessera::server {

struct MetricsListener::Impl {
  httplib::Server http;
  int port = 0;
  std::unique_ptr<ServerThread> thread;
};

MetricsListener::MetricsListener(const metrics::Registry& registry, const std::string& host, int port,
                                 std::function<Health()> health)
    : impl_(std::make_unique<Impl>()) {
  impl_->http.new_task_queue = [] { return new httplib::ThreadPool(2); };  // scrapes are few and quick
  impl_->http.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.text(), metrics::kTextContentType);
  });
  impl_->http.Get("/health", [health](const httplib::Request&, httplib::Response& res) {
    const Health h = health();
    reply_json(res, h.ok ? 200 : 503, nlohmann::json{{"status", h.status}}.dump());
  });
  impl_->port = bind_or_fail(impl_->http, host, port);
  impl_->thread = std::make_unique<ServerThread>(impl_->http);
}

MetricsListener::~MetricsListener() = default;

int MetricsListener::port() const { return impl_->port; }

}  // namespace tessera::server
