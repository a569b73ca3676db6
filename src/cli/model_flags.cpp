#include "cli/model_flags.h"

namespace tessera::cli {

void add_adapter_flag(CLI::App* cmd, std::string& dir) {
  cmd->add_option("--adapter", dir, "a PEFT LoRA adapter folder to apply");
}

void add_tokenizer_flag(CLI::App* cmd, std::string& path) {
  cmd->add_option("--tokenizer", path, "a tokenizer.json, a folder holding one, or 'bytes' (default: the model's)");
}

void add_no_verify_flag(CLI::App* cmd, bool& no_verify) {
  cmd->add_flag("--no-verify", no_verify, "do not check the weight files against SHA256SUMS / the checkpoint's manifest");
}

void add_device_dtype_flags(CLI::App* cmd, std::string& device, std::string& dtype) {
  cmd->add_option("--device", device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", dtype, "compute dtype")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
}

void add_lm_head_quant_flag(CLI::App* cmd, std::string& scheme, const std::string& sets) {
  cmd->add_option("--lm-head-quant", scheme,
                  "decode with lm_head quantized (RTN) to int8, int4, q8_0 or q4_0: fewer bytes a step, other logits" +
                      (sets.empty() ? "" : " (sets " + sets + ")"));
}

}  // namespace tessera::cli
