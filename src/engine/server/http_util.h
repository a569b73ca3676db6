// What every cpp-httplib server of ours shares: binding with a clear error, running on a thread
// of its own, and the JSON reply. Internal to src/engine/server (the only code that sees httplib).
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace tessera::server {

// Binds `server` to host:port (0: any free port) and returns the port; throws tessera::Error
// naming the address when it cannot (in use, not an address of this machine, no permission).
int bind_or_fail(httplib::Server& server, const std::string& host, int port);

// Runs a bound server's accept loop on a thread; stop() (or the destructor) closes the listening
// socket and waits for the connection threads. (httplib ends streams still being written then:
// drain them first.)
class ServerThread {
 public:
  explicit ServerThread(httplib::Server& server);
  ~ServerThread() { stop(); }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;
  void stop();

 private:
  httplib::Server& server_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

void reply_json(httplib::Response& res, int status, const std::string& body);

}  // namespace tessera::server
