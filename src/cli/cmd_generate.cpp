// `tessera generate`: continues prompts with a model, through the inference engine (continuous
// batching over the paged KV cache). Prompts from --prompt (text streams to stdout as it is
// produced), --input FILE.jsonl ({"prompt": ...} or {"messages": [...]} per line; one JSON object
// per line out with text and ids) or --input-ids FILE.safetensors (input_ids int64 [batch,
// prompt]; --output then writes generated int64 [batch, new tokens], no tokenizer needed).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/inference/generator.h"
#include "engine/inference/model_files.h"
#include "engine/inference/prompt_files.h"
#include "io/data/chat_template.h"
#include "io/data/document.h"
#include "io/atomic_file.h"
#include "io/safetensors_writer.h"
#include "model/inference_model.h"

namespace tessera::cli {

namespace {

using inference::Completion;
using inference::Request;
using inference::read_input_ids;
using inference::read_jsonl_prompts;

struct GenerateArgs {
  std::string model, adapter, tokenizer, prompt, input, input_ids, output, device = "cpu", dtype, chat_template,
      lm_head_quant;
  bool chat = false, no_cuda_graphs = false, no_verify = false;
  int64_t max_new_tokens = 128, top_k = 0;
  double temperature = 1.0, top_p = 1.0;
  std::optional<uint64_t> seed;
  int64_t max_batch_size = 64, max_batch_tokens = 2048;
};

void run_generate(const GenerateArgs& a) {
  TS_CHECK(!a.prompt.empty() + !a.input.empty() + !a.input_ids.empty() == 1,
           "generate: give exactly one of --prompt, --input and --input-ids");
  TS_CHECK(a.output.empty() || a.prompt.empty(), "generate --prompt: the text goes to stdout (no --output)");
  const Device device = Device::parse(a.device);
  TS_CHECK(device.is_cpu() || cuda_device_count() > device.index, "--device {}: {}", a.device,
           cuda_unavailable_reason().empty() ? "no such GPU" : cuda_unavailable_reason());
  const std::string dtype_name = a.dtype.empty() ? (device.is_cpu() ? "fp32" : "bf16") : a.dtype;
  const DType dtype = dtype_name == "bf16" ? DType::BF16 : DType::F32;
  inference::LoadedInferenceModel m =
      inference::load_inference_model(
      {.model = a.model, .adapter = a.adapter, .tokenizer = a.tokenizer, .device = device, .dtype = dtype, .verify = !a.no_verify});
  m.model->set_options({.cuda_graphs = !a.no_cuda_graphs});
  if (!a.lm_head_quant.empty())
    m.model->quantize_lm_head({with_context("--lm-head-quant", [&] { return parse_quant_scheme(a.lm_head_quant); })});

  std::vector<std::vector<int32_t>> prompts;
  std::optional<data::DocumentEncoder> encoder;
  if (a.input_ids.empty()) {
    TS_CHECK(m.tokenizer, "--model {}: has no tokenizer (tokenizer.json); name one with --tokenizer or give --input-ids", a.model);
    const bool needs_template = a.chat || !a.input.empty();
    const data::ChatTemplate chat_template =
        needs_template && (a.chat || !a.chat_template.empty()) ? data::resolve_chat_template(a.chat_template, *m.tokenizer)
                                                               : data::ChatTemplate::chatml;
    encoder.emplace(*m.tokenizer, data::Format::text, chat_template);
    if (!a.prompt.empty()) prompts.push_back(a.chat ? encoder->chat_prompt({{"user", a.prompt}}) : encoder->prompt(a.prompt));
    else prompts = read_jsonl_prompts(a.input, *encoder, a.chat);
  } else {
    prompts = read_input_ids(a.input_ids);
  }

  inference::GeneratorOptions options;
  options.max_batch_size = a.max_batch_size;
  options.max_batch_tokens = a.max_batch_tokens;
  options.max_queue = std::max<int64_t>(options.max_queue, static_cast<int64_t>(prompts.size()));
  options.worker_thread = false;
  inference::Generator generator(m.model, m.tokenizer, options);
  std::vector<Request> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.prompt = prompts[i];
    r.max_new_tokens = a.max_new_tokens;
    r.sampling.temperature = a.temperature;
    r.sampling.top_p = a.top_p;
    r.sampling.top_k = a.top_k;
    // One seed for the run: each prompt draws its own stream from it.
    if (a.seed) r.sampling.seed = *a.seed + i * 0x9E3779B97F4A7C15ull;
    // Ids in, ids out: every row runs its full length, EOS or not (a rectangular `generated`).
    r.ignore_eos = !a.input_ids.empty();
    requests.push_back(std::move(r));
  }
  const bool stream = !a.prompt.empty();
  const std::vector<Completion> done = inference::generate_all(generator, std::move(requests),
                                                               [&](const inference::Event& e) {
                                                                 if (!stream || e.text.empty()) return;
                                                                 std::fwrite(e.text.data(), 1, e.text.size(), stdout);
                                                                 std::fflush(stdout);
                                                               });
  for (const Completion& c : done)
    TS_CHECK(c.finish != inference::FinishReason::Error, "generate: {}", c.error);
  if (stream) {
    std::fputc('\n', stdout);
    return;
  }
  if (!a.input_ids.empty()) {
    const int64_t B = static_cast<int64_t>(done.size()), N = static_cast<int64_t>(done[0].ids.size());
    std::vector<int64_t> flat;
    for (const Completion& c : done) {
      TS_CHECK(static_cast<int64_t>(c.ids.size()) == N, "generate: rows ended at different lengths");
      flat.insert(flat.end(), c.ids.begin(), c.ids.end());
    }
    if (a.output.empty()) {
      for (const Completion& c : done) std::cout << nlohmann::json{{"ids", c.ids}}.dump() << '\n';
      return;
    }
    save_safetensors(a.output, {{"generated", Tensor::from_vector(flat, {B, N}, DType::I64)}});
    spdlog::info("generate: {} x {} tokens -> {}", B, N, a.output);
    return;
  }
  std::string lines;
  for (const Completion& c : done)
    lines += nlohmann::json{{"text", c.text}, {"ids", c.ids}, {"finish_reason", inference::finish_reason_name(c.finish)}}
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
  if (a.output.empty()) {
    std::cout << lines;
    return;
  }
  // Whole or not at all: a killed run leaves an earlier --output file as it was.
  with_context("--output", [&] { write_file_atomically(a.output, lines); });
  spdlog::info("generate: {} completions -> {}", done.size(), a.output);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Continue prompts with a model (greedy or sampled)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", a->model, "a Hugging Face model folder, a Tessera checkpoint folder or a .gguf file")
      ->required();
  add_adapter_flag(cmd, a->adapter);
  add_tokenizer_flag(cmd, a->tokenizer);
  add_no_verify_flag(cmd, a->no_verify);
  add_lm_head_quant_flag(cmd, a->lm_head_quant);
  cmd->add_option("--prompt", a->prompt, "a prompt; the text streams to stdout");
  cmd->add_option("--input", a->input, "JSONL: {\"prompt\": ...} or {\"messages\": [...]} per line");
  cmd->add_option("--input-ids", a->input_ids, "safetensors with input_ids (int64 [batch, prompt]; no tokenizer needed)");
  cmd->add_flag("--chat", a->chat, "apply the model's chat template to prompts (messages always get it)");
  cmd->add_option("--chat-template", a->chat_template, "chatml, qwen3, llama3 or deepseek (default: from the tokenizer)");
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate per prompt")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "0 is greedy")->check(non_negative())->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "nucleus sampling mass, in (0, 1]")
      ->check(in_range(0, 1, true))
      ->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "sample among the k most likely tokens (0: off)")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "make sampling reproducible");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "fp32 or bf16 (default: fp32 on the CPU, bf16 on a GPU)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--output", a->output,
                  "where to write: JSONL (one {text, ids, finish_reason} per prompt) or, with --input-ids, "
                  "safetensors with generated (int64 [batch, new tokens])");
  cmd->add_option("--max-batch-size", a->max_batch_size, "sequences per step")->check(positive())->capture_default_str();
  cmd->add_option("--max-batch-tokens", a->max_batch_tokens, "tokens per step (prefill chunks)")
      ->check(positive())
      ->capture_default_str();
  cmd->add_flag("--no-cuda-graphs", a->no_cuda_graphs, "run decode steps eagerly, not replayed from CUDA graphs");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace tessera::cli
