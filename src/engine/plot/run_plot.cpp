#include "engine/plot/run_plot.h"

#include <filesystem>

#include "core/error.h"
#include "engine/plot/metrics_file.h"
#include "engine/plot/svg_chart.h"

namespace tessera::plot {

namespace {

struct Quantity {
  const char* field;
  const char* title;
  const char* y_label;
};

// The panels, in order; the loss panel also draws eval_loss, dashed.
constexpr Quantity kQuantities[] = {{"loss", "Loss", "loss (nats/token)"},
                                    {"lr", "Learning rate", "learning rate"},
                                    {"tokens_per_s", "Throughput", "tokens/s"},
                                    {"peak_memory_gib", "Peak memory", "peak memory (GiB)"}};

}  // namespace

std::string plot_runs(const std::vector<std::string>& metrics_files) {
  TS_CHECK(!metrics_files.empty(), "plot: give at least one metrics file (log.metrics_file of tessera train)");
  const std::vector<std::string> names = run_names(metrics_files);
  Chart chart;
  chart.title = metrics_files.size() == 1 ? "Training run " + names[0] : "Training runs";
  for (const Quantity& q : kQuantities) chart.panels.push_back({.title = q.title, .x_label = "step", .y_label = q.y_label, .series = {}});
  bool any_eval = false;
  for (size_t r = 0; r < metrics_files.size(); ++r) {
    const RunMetrics run = read_metrics_file(metrics_files[r]);
    const int colour = static_cast<int>(r);
    chart.legend.push_back({.label = names[r], .color = colour, .dashed = false});
    for (size_t i = 0; i < std::size(kQuantities); ++i) {
      const auto found = run.series.find(kQuantities[i].field);
      if (found != run.series.end())
        chart.panels[i].series.push_back({.name = names[r] + "/" + found->first, .color = colour, .dashed = false, .points = found->second});
    }
    if (const auto eval = run.series.find("eval_loss"); eval != run.series.end()) {
      chart.panels[0].series.push_back({.name = names[r] + "/eval_loss", .color = colour, .dashed = true, .points = eval->second});
      any_eval = true;
    }
  }
  if (any_eval) chart.legend.push_back({.label = "eval loss (dashed)", .color = 8, .dashed = true});
  return svg(chart);
}

std::string default_plot_path(const std::string& metrics_file) {
  return std::filesystem::path(metrics_file).replace_extension(".svg").string();
}

}  // namespace tessera::plot
