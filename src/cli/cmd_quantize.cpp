// `tessera quantize --model DIR | --checkpoint DIR --scheme SCHEME [--method rtn] --out DIR`:
// post-training quantization into Tessera's quantized checkpoint (engine/export_quantized.h).
#include "cli/commands.h"
#include "cli/quant_args.h"
#include "core/error.h"

namespace tessera::cli {

void add_quantize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Quantize a model after training into a Tessera quantized checkpoint");
  auto args = add_quant_args(cmd, true);
  auto method = std::make_shared<std::string>("rtn");
  cmd->add_option("--checkpoint", args->checkpoint, "a checkpoint folder (step-<N>)");
  cmd->add_option("--model", args->model, "or a Hugging Face model folder");
  cmd->add_option("--out", args->out, "the folder to write (new or empty)")->required();
  cmd->add_option("--method", *method, "rtn: round to nearest on the scheme's grid")
      ->check(CLI::IsMember({"rtn"}))
      ->capture_default_str();
  cmd->callback([args] {
    TS_CHECK(args->checkpoint.empty() != args->model.empty(), "quantize: give one of --checkpoint and --model");
    export_quantized(quantized_export_options(*args));
  });
}

}  // namespace tessera::cli
