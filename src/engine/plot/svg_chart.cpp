#include "engine/plot/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace tessera::plot {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
constexpr int kWidth = 1000, kPanelHeight = 300, kLegendRow = 18;
constexpr int kLeft = 78, kRight = 20, kTop = 30, kBottom = 46;  // plot area inside a panel

const char* color(int index) { return kPalette[index % (sizeof(kPalette) / sizeof(kPalette[0]))]; }

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string tick_label(double v) { return fmt::format("{:.6g}", std::abs(v) < 1e-300 ? 0.0 : v); }

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) { lo = std::min(lo, v), hi = std::max(hi, v); }
  bool empty() const { return lo > hi; }
};

// Maps data to pixels inside one panel's plot area.
struct Axes {
  double x0, x1, y0, y1;  // data bounds
  double left, right, top, bottom;  // pixels
  double x(double v) const { return left + (v - x0) / (x1 - x0) * (right - left); }
  double y(double v) const { return bottom - (v - y0) / (y1 - y0) * (bottom - top); }
};

void legend(std::string& out, const std::vector<LegendEntry>& entries, int& y) {
  double x = 20;
  for (const LegendEntry& e : entries) {
    const double width = 36 + 7.0 * static_cast<double>(e.label.size()) + 18;
    if (x + width > kWidth - 20 && x > 20) x = 20, y += kLegendRow;
    out += fmt::format(R"(<line x1="{:.0f}" y1="{}" x2="{:.0f}" y2="{}" stroke="{}" stroke-width="2.5"{}/>)", x, y - 4,
                       x + 28, y - 4, color(e.color), e.dashed ? R"( stroke-dasharray="6 4")" : "");
    out += fmt::format(R"(<text x="{:.0f}" y="{}">{}</text>)", x + 34, y, escape(e.label)) + "\n";
    x += width;
  }
}

void panel(std::string& out, const Panel& p, double x0, double x1, int px, int py, int width) {
  out += fmt::format(R"~(<g class="panel" transform="translate({},{})">)~", px, py) + "\n";
  out += fmt::format(R"(<text class="title" x="{}" y="18" text-anchor="middle">{}</text>)", width / 2, escape(p.title)) +
         "\n";
  Range yr;
  for (const Series& s : p.series)
    for (const auto& [step, v] : s.points) yr.add(v);
  const Axes frame{0, 1, 0, 1, double(kLeft), double(width - kRight), double(kTop), double(kPanelHeight - kBottom)};
  out += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>)", kLeft, kTop,
                     width - kLeft - kRight, kPanelHeight - kTop - kBottom) + "\n";
  out += fmt::format(R"(<text class="axis-label" x="{:.0f}" y="{}" text-anchor="middle">{}</text>)",
                     (frame.left + frame.right) / 2, kPanelHeight - 8, escape(p.x_label)) + "\n";
  out += fmt::format(R"~(<text class="axis-label" transform="translate(16,{:.0f}) rotate(-90)" text-anchor="middle">{}</text>)~",
                     (frame.top + frame.bottom) / 2, escape(p.y_label)) + "\n";
  if (yr.empty()) {
    out += fmt::format(R"(<text x="{:.0f}" y="{:.0f}" text-anchor="middle" fill="#999">no data</text>)",
                       (frame.left + frame.right) / 2, (frame.top + frame.bottom) / 2) + "\n</g>\n";
    return;
  }
  const std::vector<double> yt = nice_ticks(yr.lo, yr.hi), xt = nice_ticks(x0, x1, 6, 1);
  const Axes a{xt.front(), xt.back(), yt.front(), yt.back(), frame.left, frame.right, frame.top, frame.bottom};
  for (double v : yt) {
    out += fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{:.0f}" y2="{:.1f}" stroke="#e5e5e5"/>)", kLeft, a.y(v), a.right,
                       a.y(v));
    out += fmt::format(R"(<text x="{}" y="{:.1f}" text-anchor="end">{}</text>)", kLeft - 5, a.y(v) + 4, tick_label(v)) +
           "\n";
  }
  for (double v : xt) {
    out += fmt::format(R"(<line x1="{:.1f}" y1="{:.0f}" x2="{:.1f}" y2="{:.0f}" stroke="#999"/>)", a.x(v), a.bottom,
                       a.x(v), a.bottom + 4);
    out += fmt::format(R"(<text x="{:.1f}" y="{:.0f}" text-anchor="middle">{}</text>)", a.x(v), a.bottom + 17,
                       tick_label(v)) + "\n";
  }
  for (const Series& s : p.series) {
    if (s.points.empty()) continue;
    std::string d;
    for (const auto& [step, v] : s.points)
      d += fmt::format("{}{:.1f},{:.1f}", d.empty() ? "M" : " L", a.x(double(step)), a.y(v));
    if (s.points.size() == 1) d += fmt::format(" L{:.1f},{:.1f}", a.x(double(s.points[0].first)), a.y(s.points[0].second));
    out += fmt::format(R"(<path class="series" data-series="{}" d="{}" fill="none" stroke="{}" stroke-width="1.8" )"
                       R"(stroke-linejoin="round" stroke-linecap="round"{}/>)",
                       escape(s.name), d, color(s.color), s.dashed ? R"( stroke-dasharray="6 4")" : "") + "\n";
  }
  out += "</g>\n";
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target, double min_spacing) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target - 1);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double spacing = 10 * power;
  for (double m : {1.0, 2.0, 5.0})
    if (m * power >= raw) {
      spacing = m * power;
      break;
    }
  spacing = std::max(spacing, min_spacing);
  std::vector<double> ticks;
  const double first = std::floor(lo / spacing + 1e-9), last = std::ceil(hi / spacing - 1e-9);
  for (double k = first; k <= last; ++k) ticks.push_back(k * spacing);
  if (ticks.size() < 2) ticks.push_back(ticks.back() + spacing);
  return ticks;
}

std::string svg(const Chart& chart) {
  std::string body;
  int y = 50;
  legend(body, chart.legend, y);
  const int top = y + 14, columns = std::max(1, chart.columns);
  const int rows = (static_cast<int>(chart.panels.size()) + columns - 1) / columns;
  const int width = kWidth / columns;
  Range xr;  // one x axis for every panel
  for (const Panel& p : chart.panels)
    for (const Series& s : p.series)
      for (const auto& [step, v] : s.points) xr.add(double(step));
  if (xr.empty()) xr.add(0);
  for (size_t i = 0; i < chart.panels.size(); ++i) {
    panel(body, chart.panels[i], xr.lo, xr.hi, static_cast<int>(i % columns) * width,
          top + static_cast<int>(i / columns) * kPanelHeight, width);
  }
  const int height = top + rows * kPanelHeight + 10;
  return fmt::format(R"(<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}">
<title>{2}</title>
<style>text {{ font-family: sans-serif; font-size: 12px; fill: #222; }} .title {{ font-size: 14px; font-weight: bold; }} .chart-title {{ font-size: 16px; font-weight: bold; }}</style>
<rect width="100%" height="100%" fill="white"/>
<text class="chart-title" x="20" y="26">{2}</text>
{3}</svg>
)",
                     kWidth, height, escape(chart.title), body);
}

}  // namespace tessera::plot
