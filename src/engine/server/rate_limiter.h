// Per-key request rate limit: a token bucket per key id, refilled at `per_minute` / 60 a second and
// holding at most `burst` requests.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace tessera::server {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(double per_minute, double burst) : per_second_(per_minute / 60.0), burst_(burst) {}

  // True when `key` may make a request now (and takes one from its bucket); always true when off.
  bool allow(const std::string& key, Clock::time_point now = Clock::now());

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  double per_second_, burst_;
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace tessera::server
