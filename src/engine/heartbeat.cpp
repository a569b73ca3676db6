#include "engine/heartbeat.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tessera {

namespace fs = std::filesystem;

namespace {

struct Beat {
  int64_t count = 0, step = 0;
};

std::optional<Beat> read_beat(const std::string& path) {
  std::ifstream in(path);
  Beat b;
  if (!(in >> b.count >> b.step)) return std::nullopt;
  return b;
}

}  // namespace

Heartbeat::Heartbeat(std::string dir, int rank, int world_size, std::chrono::milliseconds period)
    : dir_(std::move(dir)), rank_(rank), world_size_(world_size), period_(period) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  write(0);
  thread_ = std::thread([this] { run(); });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  std::error_code ec;
  fs::remove(path_of(rank_), ec);
  fs::remove(dir_, ec);  // only once it is empty: the last rank out removes it
}

void Heartbeat::set_step(int64_t step) {
  {
    std::lock_guard lock(mu_);
    step_ = step;
  }
  write(++count_);  // at once: a rank stopped right after this step shows it
}

std::string Heartbeat::path_of(int rank) const { return (fs::path(dir_) / ("rank-" + std::to_string(rank))).string(); }

// Written under a temporary name and renamed, so a reader never sees half a file.
void Heartbeat::write(int64_t count) {
  std::lock_guard writing(write_mu_);
  int64_t step;
  {
    std::lock_guard lock(mu_);
    step = step_;
  }
  const std::string path = path_of(rank_), tmp = path + ".tmp";
  std::ofstream(tmp) << count << " " << step << "\n";
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

void Heartbeat::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (wake_.wait_for(lock, period_, [&] { return stopping_; })) break;
    lock.unlock();
    write(++count_);
    lock.lock();
  }
}

std::string Heartbeat::who_stopped() const {
  std::vector<std::optional<Beat>> first(world_size_), second(world_size_);
  for (int r = 0; r < world_size_; ++r) first[r] = read_beat(path_of(r));
  const auto window = 4 * period_ + std::chrono::milliseconds(200);  // room for a busy host's scheduler
  std::this_thread::sleep_for(window);
  for (int r = 0; r < world_size_; ++r) second[r] = read_beat(path_of(r));
  std::vector<int> stopped, unseen;
  std::vector<int64_t> steps;
  for (int r = 0; r < world_size_; ++r) {
    if (r == rank_) continue;
    if (!second[r]) {
      unseen.push_back(r);
    } else if (first[r] && first[r]->count == second[r]->count) {
      stopped.push_back(r);
      steps.push_back(second[r]->step);
    }
  }
  std::string out;
  if (!stopped.empty()) {
    std::vector<std::string> named;
    for (size_t i = 0; i < stopped.size(); ++i)
      named.push_back(fmt::format("rank {} (last finished step {})", stopped[i], steps[i]));
    out = fmt::format("{} stopped making progress: no heartbeat for {:.1f} s (stopped, frozen or dead)",
                      fmt::join(named, ", "), std::chrono::duration<double>(window).count());
  } else {
    out = "every other rank's heartbeat is alive (a rank hangs inside the step, or the network does)";
  }
  if (!unseen.empty())
    out += fmt::format("; no heartbeat of rank(s) {} in {} (not a folder shared with this host?)",
                       fmt::join(unseen, ", "), dir_);
  return out;
}

}  // namespace tessera
