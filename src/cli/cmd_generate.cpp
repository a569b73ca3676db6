// `tessera generate`: continues prompts with a model, through the inference engine (continuous
// batching over the paged KV cache). Prompts from --prompt (text streams to stdout as it is
// produced), --input FILE.jsonl ({"prompt": ...} or {"messages": [...]} per line; one JSON object
// per line out with text and ids) or --input-ids FILE.safetensors (input_ids int64 [batch,
// prompt]; --output then writes generated int64 [batch, new tokens], no tokenizer needed).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/inference/generator.h"
#include "engine/inference/model_files.h"
#include "io/data/chat_template.h"
#include "io/data/document.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/inference_model.h"

namespace tessera::cli {

namespace {

using inference::Completion;
using inference::Request;

struct GenerateArgs {
  std::string model, adapter, tokenizer, prompt, input, input_ids, output, device = "cpu", dtype, chat_template;
  bool chat = false, no_cuda_graphs = false, no_verify = false;
  int64_t max_new_tokens = 128, top_k = 0;
  double temperature = 1.0, top_p = 1.0;
  std::optional<uint64_t> seed;
  int64_t max_batch_size = 64, max_batch_tokens = 2048;
};

// The prompts of --input-ids: rows of input_ids.
std::vector<std::vector<int32_t>> read_input_ids(const std::string& path) {
  return with_context(path, [&] {
    SafetensorsFile file = SafetensorsFile::open(path);
    TS_CHECK(file.contains("input_ids"), "no tensor named input_ids");
    const Tensor ids = file.tensor("input_ids").clone();
    TS_CHECK(ids.ndim() == 2 && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32) && ids.size(1) > 0,
             "input_ids must be int64 or int32 [batch, prompt], got {}", ids.str());
    std::vector<std::vector<int32_t>> rows(ids.size(0));
    for (int64_t b = 0; b < ids.size(0); ++b)
      for (int64_t t = 0; t < ids.size(1); ++t) {
        const int64_t i = b * ids.size(1) + t;
        const int64_t v = ids.dtype() == DType::I64 ? ids.data_as<int64_t>()[i] : ids.data_as<int32_t>()[i];
        TS_CHECK(v >= 0 && v <= INT32_MAX, "input_ids[{}, {}] = {} is not a token id", b, t, v);
        rows[b].push_back(static_cast<int32_t>(v));
      }
    return rows;
  });
}

// The lines of --input: each {"prompt": text} or {"messages": [{"role", "content"}...]}.
std::vector<std::vector<int32_t>> read_jsonl_prompts(const std::string& path, const data::DocumentEncoder& encoder,
                                                     bool chat) {
  std::ifstream in(path);
  TS_CHECK(in, "--input {}: cannot open the file", path);
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    TS_CHECK(j.is_object(), "{}:{}: not a JSON object", path, n);
    if (j.contains("messages")) {
      TS_CHECK(j["messages"].is_array() && !j["messages"].empty(), "{}:{}: messages must be a non-empty list", path, n);
      std::vector<data::Message> messages;
      for (const auto& m : j["messages"]) {
        TS_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
                     m["content"].is_string(),
                 "{}:{}: each message needs string role and content", path, n);
        messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
      prompts.push_back(encoder.chat_prompt(messages));
    } else {
      TS_CHECK(j.contains("prompt") && j["prompt"].is_string(), "{}:{}: needs \"prompt\" (a string) or \"messages\"",
               path, n);
      const std::string text = j["prompt"].get<std::string>();
      prompts.push_back(chat ? encoder.chat_prompt({{"user", text}}) : encoder.prompt(text));
    }
  }
  TS_CHECK(!prompts.empty(), "--input {}: no prompts", path);
  return prompts;
}

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
  std::ofstream file;
  if (!a.output.empty()) {
    file.open(a.output);
    TS_CHECK(file, "--output {}: cannot write the file", a.output);
  }
  std::ostream& out = a.output.empty() ? std::cout : file;
  for (const Completion& c : done)
    out << nlohmann::json{{"text", c.text}, {"ids", c.ids}, {"finish_reason", inference::finish_reason_name(c.finish)}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
        << '\n';
  if (!a.output.empty()) spdlog::info("generate: {} completions -> {}", done.size(), a.output);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Continue prompts with a model (greedy or sampled)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", a->model, "a Hugging Face model folder, a Tessera checkpoint folder or a .gguf file")
      ->required();
  cmd->add_option("--adapter", a->adapter, "a PEFT LoRA adapter folder to apply");
  cmd->add_option("--tokenizer", a->tokenizer, "a tokenizer.json, a folder holding one, or 'bytes' (default: the "
                  "model's)");
  cmd->add_flag("--no-verify", a->no_verify,
                "do not check the weight files against SHA256SUMS / the checkpoint's manifest");
  cmd->add_option("--prompt", a->prompt, "a prompt; the text streams to stdout");
  cmd->add_option("--input", a->input, "JSONL: {\"prompt\": ...} or {\"messages\": [...]} per line");
  cmd->add_option("--input-ids", a->input_ids, "safetensors with input_ids (int64 [batch, prompt]; no tokenizer needed)");
  cmd->add_flag("--chat", a->chat, "apply the model's chat template to prompts (messages always get it)");
  cmd->add_option("--chat-template", a->chat_template, "chatml, qwen3, llama3 or deepseek (default: from the tokenizer)");
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate per prompt")->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "sample among the k most likely tokens (0: off)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "make sampling reproducible");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "fp32 or bf16 (default: fp32 on the CPU, bf16 on a GPU)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--output", a->output,
                  "where to write: JSONL (one {text, ids, finish_reason} per prompt) or, with --input-ids, "
                  "safetensors with generated (int64 [batch, new tokens])");
  cmd->add_option("--max-batch-size", a->max_batch_size, "sequences per step")->capture_default_str();
  cmd->add_option("--max-batch-tokens", a->max_batch_tokens, "tokens per step (prefill chunks)")->capture_default_str();
  cmd->add_flag("--no-cuda-graphs", a->no_cuda_graphs, "run decode steps eagerly, not replayed from CUDA graphs");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace tessera::cli
