// `tessera tokenize --tokenizer PATH --input FILE [--add-special-tokens]`: the ids of the whole
// file as one JSON array on stdout, exactly as Hugging Face `tokenizers` would encode it.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::cli {

namespace {

struct TokenizeArgs {
  std::string tokenizer, input;
  bool add_special_tokens = false;
};

void run_tokenize(const TokenizeArgs& args) {
  const tok::Tokenizer tokenizer =
      args.tokenizer == "bytes" ? tok::Tokenizer::bytes() : tok::Tokenizer::from_file(args.tokenizer);
  std::ifstream in(args.input, std::ios::binary);
  TS_CHECK(in, "{}: cannot open the input file", args.input);
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<int32_t> ids =
      with_context(args.input, [&] { return tokenizer.encode(text.str(), args.add_special_tokens); });
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text file as one JSON array");
  auto args = std::make_shared<TokenizeArgs>();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json, a folder holding one, or 'bytes'")->required();
  cmd->add_option("--input", args->input, "text file (UTF-8)")->required();
  cmd->add_flag("--add-special-tokens", args->add_special_tokens, "apply the post-processor (BOS/EOS templates)");
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace tessera::cli
