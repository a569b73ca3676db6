// `tessera prepare-data --config CFG [--set k=v ...] --out DIR`: tokenizes and packs data.train
// (and data.eval) into DIR/train.tsd (and DIR/eval.tsd), shards that training memory-maps when
// data.train names DIR.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/config/job_config.h"
#include "io/data/fingerprint.h"
#include "io/data/pack_file.h"
#include "io/data/progress.h"
#include "io/data/shard.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::cli {

namespace {

struct PrepareArgs {
  std::string config, out;
  std::vector<std::string> overrides;
};

tok::Tokenizer job_tokenizer(const ModelSection& model) {
  const std::string& name = model.tokenizer.empty() ? model.path : model.tokenizer;
  TS_CHECK(!name.empty(), "model.tokenizer (or model.path) must name the tokenizer to prepare data with");
  return name == "bytes" ? tok::Tokenizer::bytes() : tok::Tokenizer::from_file(name);
}

void prepare_split(const std::string& source, const std::string& target, const DataSection& data,
                   const tok::Tokenizer& tokenizer, uint64_t fingerprint) {
  TS_CHECK(!std::filesystem::is_directory(source), "{}: is a folder; prepare-data reads data files", source);
  data::ShardWriter writer(target, {data.seq_len, 0, tokenizer.vocab_size(), fingerprint, 0});
  data::Progress progress("prepare-data " + source, static_cast<int64_t>(std::filesystem::file_size(source)));
  int64_t count = 0;
  const data::PackStats stats = data::pack_file(source, data, tokenizer, [&](std::vector<int32_t>&& rows) {
    writer.append(rows);
    count += static_cast<int64_t>(rows.size()) / (3 * data.seq_len);
  }, &progress);
  TS_CHECK(count > 0, "{}: no training examples", source);
  writer.commit(stats.targets);
  if (stats.bad_lines > 0)
    std::fprintf(stderr, "prepare-data: %s: skipped %lld bad lines; the first: %s\n", source.c_str(),
                 static_cast<long long>(stats.bad_lines), stats.first_bad.c_str());
  std::printf("%s: %lld %s documents -> %lld sequences of %lld tokens (%lld targets) in %s\n", source.c_str(),
              static_cast<long long>(stats.documents), data::format_name(stats.format),
              static_cast<long long>(count), static_cast<long long>(data.seq_len),
              static_cast<long long>(stats.targets), target.c_str());
}

void run_prepare_data(const PrepareArgs& args) {
  const JobConfig config = load_job_config(args.config, args.overrides);
  TS_CHECK(!config.data.train.empty(), "{}: data.train is not set", args.config);
  const tok::Tokenizer tokenizer = job_tokenizer(config.model);
  const uint64_t fingerprint = data::tokenizer_fingerprint(tokenizer);
  std::filesystem::create_directories(args.out);
  const std::filesystem::path out(args.out);
  prepare_split(config.data.train, (out / "train.tsd").string(), config.data, tokenizer, fingerprint);
  if (!config.data.eval.empty())
    prepare_split(config.data.eval, (out / "eval.tsd").string(), config.data, tokenizer, fingerprint);
}

}  // namespace

void add_prepare_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare-data", "Tokenize and pack data.train / data.eval into memory-mappable shards");
  auto args = std::make_shared<PrepareArgs>();
  cmd->add_option("--config", args->config, "job config (YAML)")->required();
  cmd->add_option("--set", args->overrides, "override a config key: --set data.seq_len=1024");
  cmd->add_option("--out", args->out, "folder for train.tsd / eval.tsd; point data.train at it")->required();
  cmd->callback([args] { run_prepare_data(*args); });
}

}  // namespace tessera::cli
