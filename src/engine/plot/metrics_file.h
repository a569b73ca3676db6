// Reading back what `tessera train` wrote to log.metrics_file: one JSON object per line, each with
// a "step" and numbers (loss, lr, tokens_per_s, peak_memory_gib, ...; eval rows carry eval_loss).
// A resumed run appends to the same file; where a step appears twice the later row wins.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tessera::plot {

using Points = std::vector<std::pair<int64_t, double>>;  // (step, value), steps ascending

struct RunMetrics {
  std::string path;
  std::map<std::string, Points> series;  // by field name; only numeric fields (booleans skipped)
};

// Throws tessera::Error naming the file (and line) when it cannot be read, a line is not a JSON
// object, "step" is missing or not an integer, or the file has no rows.
RunMetrics read_metrics_file(const std::string& path);

// Short names for a legend: each file's stem ("metrics.jsonl" is named by its folder), the path as
// given where two would read the same.
std::vector<std::string> run_names(const std::vector<std::string>& paths);

}  // namespace tessera::plot
