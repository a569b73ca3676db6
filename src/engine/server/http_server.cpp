#include "engine/server/http_server.h"

#include "core/error.h"
#include "engine/server/api_error.h"
#include "engine/server/http_util.h"

namespace tessera::server {

namespace {

HttpRequest incoming(const httplib::Request& req) {
  return {req.method, req.path, req.body, req.get_header_value("Authorization"), req.remote_addr};
}

std::unique_ptr<httplib::Server> make_server(const HttpOptions& o) {
  if (o.tls_cert.empty()) return std::make_unique<httplib::Server>();
  auto tls = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str());
  TS_CHECK(tls->is_valid(), "tls_cert {} / tls_key {}: cannot load the certificate and its key (PEM files)",
           o.tls_cert, o.tls_key);
  return tls;
}

}  // namespace

struct HttpServer::Impl {
  std::unique_ptr<httplib::Server> http;
  int port = 0;
  std::unique_ptr<ServerThread> thread;
};

HttpServer::HttpServer(ApiService& service, const HttpOptions& o) : impl_(std::make_unique<Impl>()) {
  impl_->http = make_server(o);
  httplib::Server& http = *impl_->http;
  const int threads = o.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  http.set_read_timeout(30);
  http.set_write_timeout(30);

  auto handler = [&service](const httplib::Request& req, httplib::Response& res) {
    HttpReply reply = service.handle(incoming(req));
    res.status = reply.status;
    if (!reply.stream) return res.set_content(reply.body, reply.content_type);
    res.set_header("Cache-Control", "no-cache");
    auto stream = reply.stream;
    res.set_chunked_content_provider(
        reply.content_type,
        [stream](size_t, httplib::DataSink& sink) {
          std::string data;
          switch (stream->next(data, std::chrono::seconds(1))) {
            case ReplyStream::Next::kEnd:
              sink.done();
              return true;
            case ReplyStream::Next::kIdle:
              data = ": keep-alive\n\n";  // an SSE comment: clients skip it; a write to a closed peer fails
              [[fallthrough]];
            case ReplyStream::Next::kData:
              // Events may add no bytes (a token whose text waits for the rest of its UTF-8
              // character): httplib ends a chunked reply at a zero-length write, so none is made.
              if (data.empty()) return true;
              return sink.write(data.data(), data.size());  // false: the client is gone, the stream closes
          }
          return false;
        },
        [stream](bool) mutable { stream.reset(); });  // the last owner cancels a stream cut short
  };
  http.Get(".*", handler);
  http.Post(".*", handler);
  // Replies httplib makes itself (no route for the method, body too large, bad request line) get
  // OpenAI's error shape.
  http.set_error_handler([&service](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const ApiError error = res.status == 413   ? too_large("the body is larger than max_body_bytes")
                           : res.status == 404 ? not_found("no route " + req.method + " " + req.path)
                                               : ApiError(res.status, "invalid_request_error", "bad_request",
                                                          "the HTTP request could not be read");
    service.record_transport_error(incoming(req), res.status);
    res.set_content(error.body(), "application/json");
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    res.status = 500;
    res.set_content(ApiError(500, "server_error", "internal_error", what).body(), "application/json");
  });
  impl_->port = bind_or_fail(http, o.host, o.port);
  impl_->thread = std::make_unique<ServerThread>(http);
}

HttpServer::~HttpServer() = default;

int HttpServer::port() const { return impl_->port; }

}  // namespace tessera::server
