// `tessera export --checkpoint DIR --format safetensors --out DIR [--dtype bf16|fp16|fp32]` and
// `tessera export --checkpoint DIR | --model DIR --format gguf --quant TYPE --out FILE.gguf`.
#include "cli/commands.h"
#include "core/error.h"
#include "engine/export.h"
#include "engine/export_gguf.h"

namespace tessera::cli {

namespace {
struct ExportArgs {
  std::string checkpoint, model, out, format = "safetensors", dtype = "bf16", quant = "f16";
};
}  // namespace

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face model folder or a GGUF file");
  auto args = std::make_shared<ExportArgs>();
  cmd->add_option("--checkpoint", args->checkpoint, "a checkpoint folder (step-<N>)");
  cmd->add_option("--model", args->model, "gguf: or a Hugging Face model folder");
  cmd->add_option("--out", args->out, "the folder (safetensors: new or empty) or file (gguf: new) to write")->required();
  cmd->add_option("--format", args->format, "output format")
      ->check(CLI::IsMember({"safetensors", "gguf"}))
      ->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "safetensors: weights dtype")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}))
      ->capture_default_str();
  cmd->add_option("--quant", args->quant, "gguf: type of the matrices (1-D tensors stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}))
      ->capture_default_str();
  cmd->callback([args] {
    if (args->format == "gguf") {
      TS_CHECK(args->checkpoint.empty() != args->model.empty(), "export --format gguf: give one of --checkpoint and --model");
      export_gguf({.checkpoint = args->checkpoint, .model = args->model, .out = args->out,
                   .type = gguf::parse_tensor_type(args->quant)});
      return;
    }
    TS_CHECK(!args->checkpoint.empty() && args->model.empty(), "export --format safetensors: give --checkpoint");
    const DType dtype = args->dtype == "bf16" ? DType::BF16 : args->dtype == "fp16" ? DType::F16 : DType::F32;
    export_safetensors({.checkpoint = args->checkpoint, .out = args->out, .dtype = dtype});
  });
}

}  // namespace tessera::cli
