#include "engine/server/http_util.h"

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tessera::server {

namespace {

// httplib listens with a backlog of 5 (compiled into Debian's library), so a burst of clients
// connecting at once overflows the accept queue and some are reset. Its socket is protected:
// a pointer to the member, taken in a subclass, reads it (legal C++), and listen() again deepens
// the queue of the socket already listening.
struct SocketOf : httplib::Server {
  static socket_t of(httplib::Server& server) { return server.*(&SocketOf::svr_sock_); }
};

}  // namespace

int bind_or_fail(httplib::Server& server, const std::string& host, int port) {
  TS_CHECK(port >= 0 && port <= 65535, "port {}: expected 0 to 65535", port);
  // SO_REUSEADDR only (restart while old connections linger); httplib's default adds SO_REUSEPORT,
  // which would let a second server share a port silently instead of failing.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  errno = 0;
  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    const int err = errno;
    fail("cannot listen on {}:{}: {}", host, port,
         err == EADDRINUSE ? "the port is already in use" : err ? std::strerror(err) : "not an address of this machine");
  }
  ::listen(SocketOf::of(server), SOMAXCONN);
  return bound;
}

ServerThread::ServerThread(httplib::Server& server) : server_(server) {
  thread_ = std::thread([this] {
    server_.listen_after_bind();
    finished_ = true;
  });
}

void ServerThread::stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until the accept loop has started: wait for it (or its end).
  while (!server_.is_running() && !finished_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server_.stop();
  thread_.join();
}

void reply_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

}  // namespace tessera::server
