// `tessera export --checkpoint DIR --out DIR [--format safetensors|peft] [--dtype bf16|fp16|fp32]` and
// `tessera export --checkpoint DIR | --model DIR --format gguf --quant TYPE --out FILE.gguf` and
// `tessera export --checkpoint DIR | --model DIR --format quantized [--scheme S] --out DIR`.
#include "cli/commands.h"
#include "cli/quant_args.h"
#include "core/error.h"
#include "engine/export.h"
#include "engine/export_gguf.h"
#include "engine/export_quantized.h"

namespace tessera::cli {

namespace {
struct ExportArgs {
  // dtype default: bf16, or fp32 for peft
  std::string checkpoint, model, out, format = "safetensors", dtype, quant = "f16";
};
}  // namespace

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face model folder or a GGUF file");
  auto args = std::make_shared<ExportArgs>();
  cmd->add_option("--checkpoint", args->checkpoint, "a checkpoint folder (step-<N>)");
  cmd->add_option("--model", args->model, "gguf, quantized: or a Hugging Face model folder");
  cmd->add_option("--out", args->out, "the folder (safetensors, peft: new or empty) or file (gguf: new) to write")
      ->required();
  cmd->add_option("--format", args->format,
                  "safetensors (a Hugging Face folder; a LoRA checkpoint merged), peft (a LoRA checkpoint's adapter) "
                  "gguf or quantized (Tessera's quantized checkpoint)")
      ->check(CLI::IsMember({"safetensors", "peft", "gguf", "quantized"}))
      ->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "safetensors, peft, quantized: weights dtype (default bf16; peft: fp32; quantized: the tensors left unquantized)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  cmd->add_option("--quant", args->quant, "gguf: type of the matrices (1-D tensors stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}))
      ->capture_default_str();
  auto quant = add_quant_args(cmd, false);
  cmd->callback([args, quant] {
    if (args->format == "quantized") {
      quant->checkpoint = args->checkpoint, quant->model = args->model, quant->out = args->out;
      quant->dtype = args->dtype.empty() ? "bf16" : args->dtype;
      export_quantized(quantized_export_options(*quant));
      return;
    }
    if (args->format == "gguf") {
      TS_CHECK(args->checkpoint.empty() != args->model.empty(), "export --format gguf: give one of --checkpoint and --model");
      export_gguf({.checkpoint = args->checkpoint, .model = args->model, .out = args->out,
                   .type = gguf::parse_tensor_type(args->quant)});
      return;
    }
    TS_CHECK(!args->checkpoint.empty() && args->model.empty(), "export --format {}: give --checkpoint", args->format);
    const bool peft = args->format == "peft";
    const std::string& name = args->dtype.empty() ? (peft ? "fp32" : "bf16") : args->dtype;
    const DType dtype = name == "bf16" ? DType::BF16 : name == "fp16" ? DType::F16 : DType::F32;
    const ExportOptions options{.checkpoint = args->checkpoint, .out = args->out, .dtype = dtype};
    peft ? export_peft(options) : export_safetensors(options);
  });
}

}  // namespace tessera::cli
