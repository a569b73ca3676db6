// Inputs the fuzz drivers (tests/fuzz) found mishandled, each now refused with one clear error
// naming the file and what is wrong (or, for a harmless variant, accepted).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/gguf_loader.h"
#include "engine/inference/prompt_files.h"
#include "engine/checkpoint/manifest.h"
#include "engine/sha256sums.h"
#include "error_text.h"
#include "gguf_vocab_file.h"
#include "io/gguf_reader.h"
#include "io/gguf_vocab.h"
#include "io/safetensors_writer.h"
#include "io/tokenizer/tokenizer.h"
#include "test_dir.h"

using namespace tessera;
using tessera::testing_util::error_of;
using tessera::testing_util::kNoError;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() { return testing_util::fresh_test_dir("tessera_fuzz_regressions"); }

// A GGUF file holding only `vocab`'s tokenizer metadata.
std::string vocab_file(const fs::path& dir, const gguf::Vocab& vocab) {
  const std::string path = (dir / "vocab.gguf").string();
  testing_util::write_vocab_gguf(path, vocab);
  return path;
}

gguf::Vocab small_vocab() {
  gguf::Vocab v;
  v.pre = "gpt-2";
  v.tokens = {"a", "b", "ab", "<s>"};
  v.token_types = {1, 1, 1, 3};
  v.merges = {"a b"};
  v.bos = 3;
  return v;
}

}  // namespace

// gguf_tokenizer: a merge or chat template that is not UTF-8 escaped as nlohmann's type_error 316
// (an internal error) from the tokenizer JSON built out of the metadata.
TEST(FuzzRegressions, GgufTokenizerMetadataThatIsNotUtf8) {
  const fs::path dir = temp_dir();
  EXPECT_NO_THROW(gguf_tokenizer(gguf::File::open(vocab_file(dir, small_vocab()))));
  gguf::Vocab bad_merge = small_vocab();
  bad_merge.merges = {"a b", "\xff b"};
  EXPECT_NE(error_of([&] { gguf_tokenizer(gguf::File::open(vocab_file(dir, bad_merge))); })
                .find("vocab.gguf: tokenizer.ggml.merges: merge 1 is not valid UTF-8"),
            std::string::npos);
  gguf::Vocab bad_template = small_vocab();
  bad_template.chat_template = "{{ messages \xc3 }}";
  EXPECT_NE(error_of([&] { gguf_tokenizer(gguf::File::open(vocab_file(dir, bad_template))); })
                .find("vocab.gguf: tokenizer.chat_template is not valid UTF-8"),
            std::string::npos);
  fs::remove_all(dir);
}

// sha256sums: a SHA256SUMS saved with Windows line ends named "model.safetensors\r" missing.
TEST(FuzzRegressions, Sha256SumsWithCrLfLineEnds) {
  const fs::path dir = temp_dir();
  std::ofstream(dir / "a.bin") << "hello";
  const std::string sum = checkpoint::sha256_file((dir / "a.bin").string());
  std::ofstream(dir / kSha256SumsFile) << sum << "  a.bin\r\n\r\n";
  EXPECT_EQ(verify_sha256sums(dir.string()), 1);
  std::ofstream(dir / kSha256SumsFile) << sum << "  b.bin\r\n";
  EXPECT_NE(error_of([&] { verify_sha256sums(dir.string()); }).find("b.bin: listed in SHA256SUMS but missing"),
            std::string::npos);
  fs::remove_all(dir);
}

// input_ids: a [0, n] input_ids went on to index the first of no completions.
TEST(FuzzRegressions, InputIdsWithNoRows) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "ids.safetensors").string();
  save_safetensors(path, {{"input_ids", Tensor::from_vector(std::vector<int64_t>{}, {0, 3}, DType::I64)}});
  EXPECT_NE(error_of([&] { inference::read_input_ids(path); }).find("ids.safetensors: input_ids must be int64 or int32 "
                                                                    "[batch, prompt] with at least one token"),
            std::string::npos);
  save_safetensors(path, {{"input_ids", Tensor::from_vector(std::vector<int32_t>{5, -1}, {1, 2}, DType::I32)}});
  EXPECT_NE(error_of([&] { inference::read_input_ids(path); }).find("input_ids[0, 1] = -1 is not a token id"),
            std::string::npos);
  save_safetensors(path, {{"input_ids", Tensor::from_vector(std::vector<int32_t>{5, 7}, {2, 1}, DType::I32)}});
  EXPECT_EQ(inference::read_input_ids(path), (std::vector<std::vector<int32_t>>{{5}, {7}}));
  fs::remove_all(dir);
}

// generate --input: a line that is not JSON (or not UTF-8) was reported as "not a JSON object".
TEST(FuzzRegressions, PromptLinesThatAreNotJson) {
  const fs::path dir = temp_dir();
  const tok::Tokenizer bytes = tok::Tokenizer::bytes();
  const data::DocumentEncoder encoder(bytes, data::Format::text, data::ChatTemplate::chatml);
  const std::string path = (dir / "in.jsonl").string();
  auto error = [&](const std::string& content) {
    std::ofstream(path) << content;
    return error_of([&] { inference::read_jsonl_prompts(path, encoder, false); });
  };
  EXPECT_NE(error("{\"prompt\": \"a\"}\n{\"prompt\": \"b\"\n").find("in.jsonl:2: not valid JSON"), std::string::npos);
  EXPECT_NE(error("{\"prompt\": \"\xff\"}\n").find("in.jsonl:1: not valid JSON (or not valid UTF-8)"), std::string::npos);
  EXPECT_NE(error("[1, 2]\n").find("in.jsonl:1: expected a JSON object, got array"), std::string::npos);
  EXPECT_NE(error("{\"messages\": [{\"role\": \"user\"}]}\n").find("in.jsonl:1: each message needs string role and content"),
            std::string::npos);
  EXPECT_EQ(error("\n{\"prompt\": \"ab\"}\n \n"), kNoError);
  fs::remove_all(dir);
}
