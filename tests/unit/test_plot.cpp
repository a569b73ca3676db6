// The plot's pieces: round ticks that cover the data, run names for the legend, the metrics file
// reader (later rows win, booleans skipped, errors name file and line).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/plot/metrics_file.h"
#include "engine/plot/svg_chart.h"

using namespace tessera;
using ::testing::ElementsAre;

TEST(PlotTicks, RoundValuesCoveringTheRange) {
  EXPECT_THAT(plot::nice_ticks(0.13, 0.91), ElementsAre(0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0));
  EXPECT_THAT(plot::nice_ticks(1, 60, 6, 1), ElementsAre(0, 20, 40, 60));
  EXPECT_THAT(plot::nice_ticks(3, 3, 6, 1), ElementsAre(2, 3, 4));  // one step: a range around it
  EXPECT_THAT(plot::nice_ticks(0, 0), ElementsAre(-1.0, -0.5, 0.0, 0.5, 1.0));
  const auto lr = plot::nice_ticks(3e-4, 3e-3);
  EXPECT_LE(lr.front(), 3e-4);
  EXPECT_GE(lr.back(), 3e-3);
  EXPECT_NEAR(lr[1] - lr[0], 1e-3, 1e-12);
}

TEST(PlotNames, StemsOrFoldersOrPaths) {
  EXPECT_THAT(plot::run_names({"runs/a/metrics.jsonl", "b.jsonl"}), ElementsAre("a", "b"));
  EXPECT_THAT(plot::run_names({"x/a.jsonl", "y/a.jsonl"}), ElementsAre("x/a.jsonl", "y/a.jsonl"));
}

TEST(PlotMetricsFile, LaterRowsWinAndErrorsNameTheLine) {
  const auto path = std::filesystem::temp_directory_path() / ("tessera_plot_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(path) << "{\"step\": 2, \"loss\": 3.0, \"skipped\": false}\n\n{\"step\": 1, \"loss\": 4.0}\n"
                         "{\"step\": 2, \"loss\": 2.5, \"eval_loss\": 2.75}\n";
  const plot::RunMetrics run = plot::read_metrics_file(path.string());
  EXPECT_EQ(run.series.count("skipped"), 0u);
  EXPECT_THAT(run.series.at("loss"), ElementsAre(std::pair<int64_t, double>{1, 4.0}, std::pair<int64_t, double>{2, 2.5}));
  EXPECT_THAT(run.series.at("eval_loss"), ElementsAre(std::pair<int64_t, double>{2, 2.75}));
  std::ofstream(path) << "{\"step\": 1.5, \"loss\": 3.0}\n";
  try {
    plot::read_metrics_file(path.string());
    FAIL() << "a fractional step was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ":1: expected an integer \"step\"");
  }
  std::ofstream(path) << "\n";
  EXPECT_THROW(plot::read_metrics_file(path.string()), Error);  // no rows
  std::filesystem::remove(path);
}
