// `tessera export --checkpoint DIR --out DIR [--format safetensors|peft] [--dtype bf16|fp16|fp32]`.
#include "cli/commands.h"
#include "engine/export.h"

namespace tessera::cli {

namespace {
struct ExportArgs {
  std::string checkpoint, out, format = "safetensors", dtype;  // dtype default: bf16, or fp32 for peft
};
}  // namespace

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face model folder");
  auto args = std::make_shared<ExportArgs>();
  cmd->add_option("--checkpoint", args->checkpoint, "a checkpoint folder (step-<N>)")->required();
  cmd->add_option("--out", args->out, "the folder to write (new or empty)")->required();
  cmd->add_option("--format", args->format,
                  "safetensors (a Hugging Face folder; a LoRA checkpoint merged) or peft (a LoRA checkpoint's adapter)")
      ->check(CLI::IsMember({"safetensors", "peft"}))
      ->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "weights dtype (default bf16; peft: fp32)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  cmd->callback([args] {
    const bool peft = args->format == "peft";
    const std::string& name = args->dtype.empty() ? (peft ? "fp32" : "bf16") : args->dtype;
    const DType dtype = name == "bf16" ? DType::BF16 : name == "fp16" ? DType::F16 : DType::F32;
    const ExportOptions options{.checkpoint = args->checkpoint, .out = args->out, .dtype = dtype};
    peft ? export_peft(options) : export_safetensors(options);
  });
}

}  // namespace tessera::cli
