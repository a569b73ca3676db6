#include "cli/quant_args.h"

#include "core/error.h"

namespace tessera::cli {

std::shared_ptr<QuantArgs> add_quant_args(CLI::App* cmd, bool with_dtype) {
  auto args = std::make_shared<QuantArgs>();
  cmd->add_option("--scheme", args->scheme, "quantized: int8, int4, q8_0 or q4_0 (default: a QAT checkpoint's own)")
      ->check(CLI::IsMember({"int8", "int4", "q8_0", "q4_0"}));
  cmd->add_option("--group-size", args->group_size, "quantized, int4: 32, 64 or 128 (default 32)");
  cmd->add_flag("--asymmetric", args->asymmetric, "quantized, int4: codes [0, 15] with a zero point per group");
  cmd->add_option("--modules", args->modules,
                  "quantized: q_proj ... down_proj, all-linear, embed_tokens, lm_head (default: a QAT checkpoint's "
                  "own, else all-linear)");
  if (with_dtype)
    cmd->add_option("--dtype", args->dtype, "the tensors left unquantized: bf16, fp16 or fp32")
        ->check(CLI::IsMember({"bf16", "fp16", "fp32"}))
        ->capture_default_str();
  return args;
}

QuantizedExportOptions quantized_export_options(const QuantArgs& a) {
  QuantizedExportOptions o{.checkpoint = a.checkpoint, .model = a.model, .out = a.out, .modules = a.modules};
  TS_CHECK(!a.scheme.empty() || (a.group_size == 0 && !a.asymmetric), "--group-size and --asymmetric need --scheme int4");
  if (!a.scheme.empty()) {
    const QuantScheme scheme = parse_quant_scheme(a.scheme);
    TS_CHECK(scheme == QuantScheme::Int4 || (a.group_size == 0 && !a.asymmetric),
             "--group-size and --asymmetric are int4's; {} has fixed groups and is symmetric", a.scheme);
    o.scheme = QuantSpec{scheme, scheme == QuantScheme::Int4 && a.group_size == 0 ? 32 : a.group_size, !a.asymmetric};
  }
  o.dtype = a.dtype == "bf16" ? DType::BF16 : a.dtype == "fp16" ? DType::F16 : DType::F32;
  return o;
}

}  // namespace tessera::cli
