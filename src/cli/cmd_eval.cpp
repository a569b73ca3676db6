// `tessera eval --model DIR --data FILE [--seq-len N] [--json]`: the loss and perplexity of a model
// over a data file or a prepare-data folder, packed as the trainer packs it and computed by the
// trainer's own evaluation (engine/evaluation.h). Under `mpirun -np N` the ranks split the
// sequences; the numbers do not depend on N.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "cli/model_flags.h"
#include "comm/world.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/evaluation.h"
#include "engine/model_folder.h"
#include "io/data/shard.h"

namespace tessera::cli {

namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string model, tokenizer, adapter, data, format, chat_template, device = "auto", dtype = "fp32";
  int64_t seq_len = 0, batch_size = 1;
  bool json = false, no_verify = false;
};

// The data options: the checkpoint's (how it trained), else the defaults; then the flags. A
// prepare-data folder is read as packed: its eval.tsd, else its train.tsd, at its seq_len.
data::DataOptions data_options(const EvalArgs& args, const RunnableModel& model, data::Split& split) {
  data::DataOptions d = model.job_data.value_or(data::DataOptions{});
  d.train = d.eval = "";
  split = data::Split::eval;
  d.eval = args.data;
  if (fs::is_directory(args.data)) {
    const bool has_eval = fs::exists(fs::path(args.data) / "eval.tsd");
    TS_CHECK(has_eval || fs::exists(fs::path(args.data) / "train.tsd"),
             "--data {}: a folder without eval.tsd or train.tsd (not a prepare-data folder)", args.data);
    if (!has_eval) {
      split = data::Split::train;
      d.eval.clear();
      d.train = args.data;
    }
    const int64_t prepared =
        data::Shard::open((fs::path(args.data) / (has_eval ? "eval.tsd" : "train.tsd")).string()).header().seq_len;
    d.seq_len = args.seq_len > 0 ? args.seq_len : prepared;
  } else if (args.seq_len > 0) {
    d.seq_len = args.seq_len;
  } else if (!model.job_data) {
    d.seq_len = std::min<int64_t>(1024, model.config.max_position_embeddings);
  }
  if (!args.format.empty()) d.format = args.format;
  if (!args.chat_template.empty()) d.chat_template = args.chat_template;
  TS_CHECK(d.seq_len <= model.config.max_position_embeddings,
           "--seq-len {}: longer than the model's context ({} positions, max_position_embeddings)", d.seq_len,
           model.config.max_position_embeddings);
  return d;
}

void run_eval(const EvalArgs& args) {
  const World& world = World::init();
  const Device device = args.device == "auto" ? world.device : Device::parse(args.device);
  TS_CHECK(device.is_cpu() || cuda_device_count() > device.index, "--device {}: {}", args.device,
           cuda_unavailable_reason().empty() ? "no such GPU" : cuda_unavailable_reason());
  TS_CHECK(fs::exists(args.data), "--data {}: no such file or folder", args.data);
  const DType dtype = args.dtype == "bf16" ? DType::BF16 : DType::F32;
  RunnableModel model = load_runnable_model(
      args.model, {.dtype = dtype, .device = device, .verify = !args.no_verify, .tokenizer = args.tokenizer,
                   .adapter = args.adapter});
  data::Split split;
  const data::DataOptions options = data_options(args, model, split);
  const data::DataLoader data(options, model.tokenizer, 0, split);
  auto host = make_mpi_communicator(world);
  WholeParams source(model.params, nullptr);
  const EvalTotals totals = evaluate_dataset(model.config, source, data, args.batch_size, *host, world, device);
  if (world.rank != 0) return;
  std::string out;
  if (args.json) {
    out = nlohmann::json{{"loss", totals.loss()},           {"perplexity", totals.perplexity()},
                         {"tokens", totals.targets},        {"sequences", data.num_sequences()},
                         {"seq_len", data.seq_len()}}.dump() + "\n";
  } else {
    out = fmt::format("loss {:.6f}  perplexity {:.4f}  over {} tokens ({} sequences of {} from {})\n", totals.loss(),
                      totals.perplexity(), totals.targets, data.num_sequences(), data.seq_len(), data.path());
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Loss and perplexity of a model over a dataset");
  auto args = std::make_shared<EvalArgs>();
  cmd->add_option("--model", args->model, "a Hugging Face model folder, a Tessera checkpoint (step-<N>) or a .gguf file")
      ->required();
  cmd->add_option("--data", args->data, "JSONL (text, prompt/completion or chat messages), a text file, or a "
                  "prepare-data folder")->required();
  cmd->add_option("--seq-len", args->seq_len, "tokens per packed sequence (default: a checkpoint's data.seq_len, a "
                  "prepared folder's, else min(1024, the model's context))")->check(positive());
  cmd->add_option("--batch-size", args->batch_size, "sequences per forward pass")
      ->check(positive())->capture_default_str();
  cmd->add_option("--format", args->format, "data format (default: a checkpoint's data.format, else auto)")
      ->check(CLI::IsMember({"auto", "text", "completion", "chat"}));
  cmd->add_option("--chat-template", args->chat_template, "chatml, qwen3, llama3 or deepseek (default: the tokenizer's)");
  add_tokenizer_flag(cmd, args->tokenizer);
  add_adapter_flag(cmd, args->adapter);
  cmd->add_flag("--json", args->json, "print one JSON object: loss, perplexity, tokens, sequences, seq_len");
  add_no_verify_flag(cmd, args->no_verify);
  add_device_dtype_flags(cmd, args->device, args->dtype);
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace tessera::cli
