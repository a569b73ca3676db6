// `tessera quantize --model DIR | --checkpoint DIR --scheme SCHEME [--method rtn|gptq] --out DIR`:
// post-training quantization into Tessera's quantized checkpoint (engine/export_quantized.h);
// GPTQ takes calibration data (--calib FILE and its options, engine/sequential_gptq.h).
#include <filesystem>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "cli/quant_args.h"
#include "core/error.h"

namespace tessera::cli {

namespace {

struct GptqArgs {
  std::string method = "rtn", calib;
  GptqCalibration calibration;
  bool act_order = false;
};

// The GPTQ options checked against the method: each is an error with RTN, and GPTQ needs --calib.
std::optional<GptqCalibration> gptq_calibration(const GptqArgs& a, const CLI::App& cmd) {
  const char* gptq_only[] = {"--calib", "--calib-samples", "--calib-seq-len", "--act-order", "--gptq-block", "--gptq-damp"};
  if (a.method != "gptq") {
    for (const char* flag : gptq_only)
      TS_CHECK(cmd.count(flag) == 0, "quantize: {} is for --method gptq (the method is {})", flag, a.method);
    return std::nullopt;
  }
  TS_CHECK(!a.calib.empty(), "quantize --method gptq: --calib FILE.jsonl is needed (the calibration text)");
  TS_CHECK(a.calibration.samples > 0, "--calib-samples {}: must be positive", a.calibration.samples);
  TS_CHECK(a.calibration.seq_len > 0, "--calib-seq-len {}: must be positive", a.calibration.seq_len);
  TS_CHECK(a.calibration.gptq.block_size > 0, "--gptq-block {}: must be positive", a.calibration.gptq.block_size);
  TS_CHECK(std::filesystem::is_regular_file(a.calib) || std::filesystem::is_directory(a.calib),
           "--calib {}: no such file", a.calib);
  GptqCalibration c = a.calibration;
  c.file = a.calib;
  c.gptq.act_order = a.act_order;
  return c;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Quantize a model after training into a Tessera quantized checkpoint");
  auto args = add_quant_args(cmd, true);
  auto g = std::make_shared<GptqArgs>();
  cmd->add_option("--checkpoint", args->checkpoint, "a checkpoint folder (step-<N>)");
  cmd->add_option("--model", args->model, "or a Hugging Face model folder");
  cmd->add_option("--out", args->out, "the folder to write (new or empty)")->required();
  cmd->add_option("--method", g->method, "rtn: round to nearest on the scheme's grid; gptq: GPTQ on calibration data")
      ->check(CLI::IsMember({"rtn", "gptq"}))
      ->capture_default_str();
  cmd->add_option("--calib", g->calib, "gptq: calibration data, JSONL (text, prompt/completion or chat) or a text file");
  cmd->add_option("--calib-samples", g->calibration.samples, "gptq: packed calibration sequences")
      ->capture_default_str();
  cmd->add_option("--calib-seq-len", g->calibration.seq_len, "gptq: tokens per sequence (capped by the model's context)")
      ->capture_default_str();
  cmd->add_flag("--act-order", g->act_order, "gptq: quantize columns by decreasing Hessian diagonal");
  cmd->add_option("--gptq-block", g->calibration.gptq.block_size, "gptq: columns per lazy block update")
      ->capture_default_str();
  cmd->add_option("--gptq-damp", g->calibration.gptq.damp, "gptq: dampening, as a fraction of the mean Hessian diagonal")
      ->check(in_range(1e-6, 10.0))->capture_default_str();
  cmd->callback([cmd, args, g] {
    TS_CHECK(args->checkpoint.empty() != args->model.empty(), "quantize: give one of --checkpoint and --model");
    QuantizedExportOptions options = quantized_export_options(*args);
    options.gptq = gptq_calibration(*g, *cmd);
    export_quantized(options);
  });
}

}  // namespace tessera::cli
