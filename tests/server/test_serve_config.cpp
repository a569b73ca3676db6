// The serve config's one-line errors, and API keys: files, ids that never show the key, checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/server/api_keys.h"
#include "engine/server/rate_limiter.h"
#include "engine/server/serve_config.h"
#include "error_text.h"
#include "test_dir.h"

using namespace tessera;
using tessera::testing_util::error_of;
using tessera::testing_util::write_temp_file;

namespace {

std::string config_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const std::string path = write_temp_file("serve.yaml", text);
  return error_of([&] { server::load_serve_config(path, overrides); }, path, "serve.yaml");
}

}  // namespace

TEST(ServeConfig, ValuesDefaultsAndOverrides) {
  auto c = server::load_serve_config(write_temp_file("ok.yaml", "model: /m\nport: 9000\nadapters: {sql: /a/sql}\n"
                                                                "engine: {max_batch_size: 8}\n"),
                                     {"api_keys_file=/k", "adapters.chat=/a/chat"});
  EXPECT_EQ(c.model, "/m");
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.engine.max_batch_size, 8);
  EXPECT_EQ(c.engine.max_queue, 1024);
  EXPECT_EQ(c.api_keys_file, "/k");
  EXPECT_EQ(c.adapter_dirs(), (std::map<std::string, std::string>{{"chat", "/a/chat"}, {"sql", "/a/sql"}}));
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.lm_head_quant, "none");
  EXPECT_EQ(server::load_serve_config("", {"model=/m", "lm_head_quant=q8_0"}).lm_head_quant, "q8_0");
}

TEST(ServeConfig, OneLineErrors) {
  EXPECT_EQ(config_error("model: /m\nprot: 80\n"), "serve.yaml:2: unknown key 'prot' (did you mean 'port'?)");
  EXPECT_EQ(config_error("model: /m\nport: http\n"), "serve.yaml:2: port: expected an integer, got \"http\"");
  EXPECT_EQ(config_error("model: /m\nport: 70000\n"), "serve.yaml:2: port: must be 0 to 65535, got 70000");
  EXPECT_EQ(config_error("port: 80\n"), "serve.yaml: model: is required: a Hugging Face model folder (or --model DIR)");
  EXPECT_EQ(config_error("model: /m\ntls_cert: c.pem\n"), "serve.yaml:2: tls_cert: tls_cert and tls_key go together");
  EXPECT_EQ(config_error("model: /m\nengine:\n  max_queue: 0\n"), "serve.yaml:3: engine.max_queue: must be at least 1, got 0");
  EXPECT_EQ(config_error("model: /m\nengine: {kv_cahce_gb: 1}\n"),
            "serve.yaml:2: unknown key 'engine.kv_cahce_gb' (did you mean 'engine.kv_cache_gb'?)");
  EXPECT_EQ(config_error("model: /m\nadapters: [a]\n"), "serve.yaml:2: adapters: must be a mapping of adapter names to folders");
  EXPECT_EQ(config_error("model: /m\n", {"adapters.bad name=/x"}),
            "--set adapters.bad name=/x: adapters.bad name: names are letters, digits, '-', '_' and '.'");
  EXPECT_EQ(config_error("model: /m\ndevice: tpu\n"), "serve.yaml:2: device: expected one of auto, cpu, cuda, got \"tpu\"");
  EXPECT_EQ(config_error("model: /m\n", {"lm_head_quant=nf4"}),
            "--set lm_head_quant=nf4: lm_head_quant: expected one of none, int8, int4, q8_0, q4_0, got \"nf4\"");
  EXPECT_EQ(config_error("model: [\n"), "serve.yaml:2: invalid YAML: end of sequence flow not found");
}

// `checksums` (file name: SHA-256, checked in place of SHA256SUMS) and --lora NAME=DIR.
TEST(ServeConfig, ChecksumsAndLoraFlags) {
  const std::string sum(64, 'a');
  auto c = server::load_serve_config(write_temp_file("sums.yaml", "model: /m\nchecksums:\n  model.safetensors: " + sum + "\n"));
  EXPECT_EQ(c.checksum_map(), (std::map<std::string, std::string>{{"model.safetensors", sum}}));
  EXPECT_EQ(config_error("model: /m\nchecksums: [a]\n"),
            "serve.yaml:2: checksums: must be a mapping of file names to SHA-256 hex digests");
  EXPECT_EQ(config_error("model: /m\nchecksums: {config: abc}\n"),
            "serve.yaml:2: checksums.config: expected 64 hex digits (sha256sum's output)");
  EXPECT_EQ(server::parse_lora_flag("sql=/a/sql"), (std::pair<std::string, std::string>{"sql", "/a/sql"}));
  EXPECT_EQ(server::parse_lora_flag("v1.2=dir=x"), (std::pair<std::string, std::string>{"v1.2", "dir=x"}));
  auto flag_error = [](const std::string& flag) { return error_of([&] { server::parse_lora_flag(flag); }); };
  EXPECT_EQ(flag_error("/a/sql"), "--lora /a/sql: expected NAME=DIR");
  EXPECT_EQ(flag_error("sql="), "--lora sql=: expected NAME=DIR");
  EXPECT_EQ(flag_error("my sql=/a"), "--lora my sql=/a: adapter names are letters, digits, '-', '_' and '.'");
}

TEST(ApiKeys, FileIdsAndChecks) {
  server::ApiKeys keys;
  keys.add("sk-from-flag");
  keys.add_file(write_temp_file("keys", "# team keys\nalice sk-alice\n\nsk-anon\n"));
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys.check("Bearer sk-alice"), "alice");
  const auto anon = keys.check("Bearer sk-anon");
  ASSERT_TRUE(anon);
  EXPECT_TRUE(anon->starts_with("sha256:"));
  EXPECT_EQ(anon->size(), 15u);
  EXPECT_EQ(anon->find("sk-anon"), std::string::npos);
  EXPECT_FALSE(keys.check("Bearer sk-alic"));
  EXPECT_FALSE(keys.check("sk-alice"));  // not a Bearer header
  EXPECT_FALSE(keys.check(""));
  try {
    keys.add_file(write_temp_file("bad", "a b c\n"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad:1: expected KEY or ID KEY"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find(" b "), std::string::npos);
  }
  EXPECT_THROW(keys.add(""), Error);
}

TEST(RateLimiter, BucketRefills) {
  server::RateLimiter limiter(60, 2);  // one a second, bursts of two
  const auto t0 = server::RateLimiter::Clock::now();
  EXPECT_TRUE(limiter.allow("k", t0));
  EXPECT_TRUE(limiter.allow("k", t0));
  EXPECT_FALSE(limiter.allow("k", t0));
  EXPECT_TRUE(limiter.allow("other", t0));
  EXPECT_TRUE(limiter.allow("k", t0 + std::chrono::milliseconds(1001)));
  EXPECT_FALSE(limiter.allow("k", t0 + std::chrono::milliseconds(1002)));
  EXPECT_TRUE(server::RateLimiter(0, 0).allow("k"));
}

TEST(ServeConfig, ExampleConfigsAreValid) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TESSERA_SOURCE_DIR "/configs")) {
    if (!entry.path().filename().string().starts_with("serve-")) continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(server::load_serve_config(entry.path().string()));
    ++seen;
  }
  EXPECT_GE(seen, 2);
}
