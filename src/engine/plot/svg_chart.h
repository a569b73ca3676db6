// Line charts as a hand-written SVG: small multiples (one panel per quantity, sharing the x axis)
// with ticks, axis labels, a title per panel and one legend. Each series is one <path>; grid
// lines, ticks and legend swatches are <line>s, so a reader can count series by counting paths.
#pragma once

#include <string>
#include <vector>

#include "engine/plot/metrics_file.h"

namespace tessera::plot {

struct Series {
  std::string name;  // for the path's data-series attribute
  int color = 0;     // index into the palette
  bool dashed = false;
  Points points;
};

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Series> series;  // a panel without points says "no data"
};

struct LegendEntry {
  std::string label;
  int color = 0;
  bool dashed = false;
};

struct Chart {
  std::string title;
  std::vector<Panel> panels;
  std::vector<LegendEntry> legend;
  int columns = 2;
};

std::string svg(const Chart& chart);

// Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi], about `target` of
// them; the first and last bound the axis. Equal lo and hi get a range around them.
std::vector<double> nice_ticks(double lo, double hi, int target = 5, double min_spacing = 0);

}  // namespace tessera::plot
