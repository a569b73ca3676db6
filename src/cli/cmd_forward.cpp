// `tessera forward`: one forward (and optionally backward) pass of a Hugging Face model on given
// ids, writing logits, loss and gradients under HF names: the parity and debugging tool.
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "comm/world.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/gguf_loader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "lora/apply.h"
#include "model/transformer.h"

namespace tessera::cli {

namespace {

struct ForwardArgs {
  std::string model, adapter, input_ids, output, device = "auto", dtype = "fp32";
  bool grads = false;
};

void run_forward(const ForwardArgs& args) {
  const World& world = World::init();
  const Device device = args.device == "auto" ? world.device : Device::parse(args.device);
  TS_CHECK(device.is_cpu() || cuda_device_count() > device.index, "--device {}: {}", args.device,
           cuda_unavailable_reason().empty() ? "no such GPU" : cuda_unavailable_reason());
  const DType dtype = args.dtype == "bf16" ? DType::BF16 : DType::F32;
  LoadedModel model = load_model_file(args.model, dtype, device);
  std::optional<lora::PeftAdapter> adapter;
  if (!args.adapter.empty()) {
    adapter = lora::read_peft_adapter(args.adapter, model.config);
    lora::attach_adapter(model.params, model.config, *adapter, dtype, device);
  }

  const Tensor ids = with_context(args.input_ids, [&] {
    SafetensorsFile file = SafetensorsFile::open(args.input_ids);
    TS_CHECK(file.contains("input_ids"), "no tensor named input_ids");
    return file.tensor("input_ids").clone();
  });
  const TokenBatch batch = with_context(args.input_ids, [&] { return TokenBatch::causal_lm(ids, device); });
  int64_t max_id = 0;
  for (int32_t v : batch.ids.to(Device::cpu()).to_vector<int32_t>()) max_id = std::max<int64_t>(max_id, v);
  TS_CHECK(max_id < model.config.vocab_size, "{}: token id {} is outside the vocabulary of {}", args.input_ids, max_id,
           model.config.vocab_size);

  ModelParams grads;
  if (args.grads) {
    grads = make_params(model.config, DType::F32, device, /*zero=*/true);
    lora::add_adapter_grads(grads, model.params);
  }
  const ModelOutput out = run_model(model.config, model.params, batch, true, args.grads ? &grads : nullptr);

  std::vector<std::pair<std::string, Tensor>> tensors{
      {"logits", out.logits}, {"loss", Tensor::from_vector<float>({static_cast<float>(out.loss)}, {1}, DType::F32)}};
  if (args.grads) {
    for_each_param(model.config, grads, [&](const std::string& name, Tensor& g) { tensors.emplace_back("grad." + name, g); });
    // The adapter's tensors under their PEFT names (its modules_to_save are the model's own, above).
    for (int64_t l = 0; adapter && l < model.config.num_hidden_layers; ++l) {
      for (int p = 0; p < kProjections; ++p) {
        if (!adapter->spec.adapts(l, Projection(p))) continue;
        const Linear& g = projection(grads.layers[l], Projection(p));
        tensors.emplace_back("grad." + lora::peft_name(lora::lora_a_name(l, Projection(p))), g.lora_a);
        tensors.emplace_back("grad." + lora::peft_name(lora::lora_b_name(l, Projection(p))), g.lora_b);
      }
    }
  }
  save_safetensors(args.output, tensors);
  spdlog::info("forward: loss {:.6f} over {} targets -> {}", out.loss, batch.num_targets, args.output);
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("forward", "Run a model on input ids; write logits, loss and (--grads) gradients");
  auto args = std::make_shared<ForwardArgs>();
  cmd->add_option("--model", args->model, "Hugging Face model folder or .gguf file")->required();
  add_adapter_flag(cmd, args->adapter);
  cmd->add_option("--input-ids", args->input_ids, "safetensors file with input_ids (int64/int32 [batch, seq])")->required();
  cmd->add_option("--output", args->output, "safetensors file to write")->required();
  cmd->add_flag("--grads", args->grads,
                "also write grad.<parameter name> for every parameter (and grad.<PEFT name> for the adapter's)");
  add_device_dtype_flags(cmd, args->device, args->dtype);
  cmd->callback([args] { run_forward(*args); });
}

}  // namespace tessera::cli
