// The flags that the commands loading a model (forward, eval, generate, serve) share, declared in
// one place so that each reads and checks the same everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace tessera::cli {

// --adapter DIR: a PEFT LoRA adapter folder applied to the model.
void add_adapter_flag(CLI::App* cmd, std::string& dir);
// --tokenizer PATH: replaces the model's own tokenizer.
void add_tokenizer_flag(CLI::App* cmd, std::string& path);
// --no-verify: skip checking the weight files against SHA256SUMS / the checkpoint's manifest.
void add_no_verify_flag(CLI::App* cmd, bool& no_verify);
// --device and --dtype of forward and eval: "auto" picks a GPU where there is one.
void add_device_dtype_flags(CLI::App* cmd, std::string& device, std::string& dtype);
// --lm-head-quant SCHEME: decode against a packed copy of lm_head (InferenceModel::quantize_lm_head);
// `sets` names the config key it overrides, if any ("" for none).
void add_lm_head_quant_flag(CLI::App* cmd, std::string& scheme, const std::string& sets = "");

}  // namespace tessera::cli
