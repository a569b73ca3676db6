// `tessera plot`: training runs' metrics files as one SVG of small multiples against step: loss
// (eval loss dashed), learning rate, tokens/s and peak memory; one colour per run, to compare runs.
#pragma once

#include <string>
#include <vector>

namespace tessera::plot {

// Reads every metrics file (throwing tessera::Error naming a bad one) and returns the SVG text.
std::string plot_runs(const std::vector<std::string>& metrics_files);

// Where `tessera plot` writes without --out: the first file with .svg in place of its extension.
std::string default_plot_path(const std::string& metrics_file);

}  // namespace tessera::plot
