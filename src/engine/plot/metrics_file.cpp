#include "engine/plot/metrics_file.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tessera::plot {

RunMetrics read_metrics_file(const std::string& path) {
  std::ifstream in(path);
  TS_CHECK(in, "{}: cannot open the metrics file", path);
  std::map<std::string, std::map<int64_t, double>> by_step;
  std::string line;
  int64_t rows = 0;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    TS_CHECK(row.is_object(), "{}:{}: expected one JSON object per line (a log.metrics_file of tessera train)", path,
             number);
    const auto step = row.find("step");
    TS_CHECK(step != row.end() && step->is_number_integer(), "{}:{}: expected an integer \"step\"", path, number);
    for (const auto& [key, value] : row.items())
      if (key != "step" && value.is_number()) by_step[key][step->get<int64_t>()] = value.get<double>();
    ++rows;
  }
  TS_CHECK(rows > 0, "{}: no metrics rows", path);
  RunMetrics run;
  run.path = path;
  for (const auto& [key, points] : by_step) run.series[key] = Points(points.begin(), points.end());
  return run;
}

std::vector<std::string> run_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  for (const std::string& p : paths) {
    const std::filesystem::path path(p);
    const std::string folder = path.parent_path().filename().string();
    names.push_back(path.stem() == "metrics" && !folder.empty() ? folder : path.stem().string());
  }
  for (size_t i = 0; i < names.size(); ++i)
    for (size_t j = 0; j < names.size(); ++j)
      if (i != j && names[i] == names[j] && paths[i] != paths[j]) {
        for (size_t k = 0; k < names.size(); ++k) names[k] = paths[k];
        return names;
      }
  return names;
}

}  // namespace tessera::plot
