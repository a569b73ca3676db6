// The `tessera` binary: parses the command line and turns every failure into one line on
// stderr and a non-zero exit (and, in a multi-rank job, takes the other ranks down with it).
#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "comm/world.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/config/config_io.h"

namespace {

int report(const char* kind, const char* message) {
  std::fprintf(stderr, "tessera: %s%s\n", kind, message);
  std::fflush(stderr);
  if (tessera::World::initialized() && tessera::World::get().size > 1) tessera::abort_world(1);
  return 1;
}

// CLI11 reports an unknown command as a missing one; name it, with the closest real command.
void check_command_name(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return;
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (std::find(names.begin(), names.end(), argv[1]) != names.end()) return;
  std::string hint = tessera::config::closest(argv[1], names);
  throw tessera::Error(fmt::format("unknown command '{}'{} (see tessera --help)", argv[1],
                                   hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

}  // namespace

int main(int argc, char** argv) {
  tessera::init_logging(0, 1);  // World::init() redoes it with the rank
  CLI::App app{"Tessera: train, fine-tune and serve transformer language models across GPUs and machines."};
  app.name("tessera");
  app.require_subcommand(1);
  app.fallthrough(false);
  tessera::cli::add_version_command(app);
  tessera::cli::add_env_command(app);
  tessera::cli::add_config_command(app);
  tessera::cli::add_selftest_command(app);
  tessera::cli::add_forward_command(app);
  tessera::cli::add_tokenize_command(app);
  tessera::cli::add_train_command(app);
  tessera::cli::add_estimate_memory_command(app);
  tessera::cli::add_export_command(app);
  tessera::cli::add_quantize_command(app);
  tessera::cli::add_prepare_data_command(app);
  tessera::cli::add_plot_command(app);
  tessera::cli::add_generate_command(app);
  tessera::cli::add_eval_command(app);
  tessera::cli::add_serve_command(app);
  tessera::cli::add_number_checks(app);
  try {
    check_command_name(app, argc, argv);
    tessera::cli::check_flag_names(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "tessera: error: %s (see tessera --help)\n", e.what());
    return e.get_exit_code() == 0 ? 2 : e.get_exit_code();
  } catch (const tessera::Error& e) {
    return report("error: ", e.what());
  } catch (const std::exception& e) {
    return report("internal error: ", e.what());
  }
  return 0;
}
