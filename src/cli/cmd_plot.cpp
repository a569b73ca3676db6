// `tessera plot METRICS.jsonl [more.jsonl ...] [--out FILE.svg]`: training runs as one SVG.
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/plot/run_plot.h"
#include "io/atomic_file.h"

namespace tessera::cli {

namespace {
struct PlotArgs {
  std::vector<std::string> files;
  std::string out;
};
}  // namespace

void add_plot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plot", "Draw training runs' metrics files (log.metrics_file) as one SVG: loss, learning rate, tokens/s, memory");
  auto args = std::make_shared<PlotArgs>();
  cmd->add_option("metrics", args->files, "one or more metrics files (JSONL); several are drawn on one chart")
      ->required();
  cmd->add_option("--out", args->out, "the SVG to write (default: the first file with .svg in place of .jsonl)");
  cmd->callback([args] {
    const std::string svg = plot::plot_runs(args->files);
    const std::string out = args->out.empty() ? plot::default_plot_path(args->files[0]) : args->out;
    with_context("plot --out", [&] { write_file_atomically(out, svg); });  // an earlier chart survives a failure
    spdlog::info("wrote {} ({} run(s))", out, args->files.size());
  });
}

}  // namespace tessera::cli
