// Progress of a long job on stderr: a bar redrawn in place on a terminal, otherwise a plain log
// line at every tenth (so CI logs stay short).
#pragma once

#include <cstdint>
#include <string>

namespace tessera::data {

class Progress {
 public:
  Progress(std::string label, int64_t total);  // total: in any unit (bytes here)
  void update(int64_t done);
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  int last_ = -1;  // last percentage (tty) or tenth (log) shown
};

}  // namespace tessera::data
