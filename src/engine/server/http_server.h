// The API service on cpp-httplib: plain HTTP or TLS (OpenSSL), a pool of connection threads,
// bodies over the limit refused before they are read, streams written as chunked server-sent
// events with a keep-alive comment each second (so a client that went away is noticed and its
// generation cancelled even while it waits in the queue).
#pragma once

#include <memory>
#include <string>

#include "engine/server/api_service.h"

namespace tessera::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port
  int threads = 128;
  int64_t max_body_bytes = 1 << 20;
  std::string tls_cert, tls_key;  // both set: HTTPS
};

class HttpServer {
 public:
  // Binds at once: a port in use, a bad address or unreadable TLS files are a tessera::Error here.
  HttpServer(ApiService& service, const HttpOptions& options);
  ~HttpServer();  // stops accepting and waits for the connections being served
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::server
