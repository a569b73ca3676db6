#include "io/data/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace tessera::data {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), tty_(::isatty(STDERR_FILENO) == 1) {}

void Progress::update(int64_t done) {
  const int percent = static_cast<int>(std::clamp<int64_t>(done * 100 / total_, 0, 100));
  if (tty_) {
    if (percent == last_) return;
    constexpr int kWidth = 30;
    const int filled = percent * kWidth / 100;
    std::fprintf(stderr, "\r%s [%s%s] %3d%%", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), percent);
  } else {
    if (percent / 10 == last_) return;
    std::fprintf(stderr, "%s: %d%%\n", label_.c_str(), percent / 10 * 10);
  }
  std::fflush(stderr);
  last_ = tty_ ? percent : percent / 10;
}

void Progress::finish() {
  update(total_);
  if (tty_) std::fputc('\n', stderr);
}

}  // namespace tessera::data
