// `tessera export --checkpoint DIR --format safetensors --out DIR [--dtype bf16|fp16|fp32]`.
#include "cli/commands.h"
#include "engine/export.h"

namespace tessera::cli {

namespace {
struct ExportArgs {
  std::string checkpoint, out, format = "safetensors", dtype = "bf16";
};
}  // namespace

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face model folder");
  auto args = std::make_shared<ExportArgs>();
  cmd->add_option("--checkpoint", args->checkpoint, "a checkpoint folder (step-<N>)")->required();
  cmd->add_option("--out", args->out, "the folder to write (new or empty)")->required();
  cmd->add_option("--format", args->format, "output format")->check(CLI::IsMember({"safetensors"}))->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "weights dtype")->check(CLI::IsMember({"bf16", "fp16", "fp32"}))->capture_default_str();
  cmd->callback([args] {
    const DType dtype = args->dtype == "bf16" ? DType::BF16 : args->dtype == "fp16" ? DType::F16 : DType::F32;
    export_safetensors({.checkpoint = args->checkpoint, .out = args->out, .dtype = dtype});
  });
}

}  // namespace tessera::cli
