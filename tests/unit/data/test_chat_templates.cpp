// The built-in chat templates against the strings the real Jinja templates in
// tests/data/tokenizers/*/tokenizer_config.json render (worked out by hand from those templates),
// and the special tokens they produce with the real tokenizers.
#include <gtest/gtest.h>

#include "io/data/chat_template.h"
#include "io/data/document.h"
#include "unit/data/data_test_util.h"

namespace tessera::data {
namespace {

using namespace testing;

const std::vector<Message> kChat = {{"system", "Be brief."},
                                    {"user", "Hi"},
                                    {"assistant", " Hello! "},
                                    {"user", "2+2?"},
                                    {"assistant", "4"}};

std::string rendered(ChatTemplate t, const std::vector<Message>& messages, bool trained_only = false) {
  std::string out;
  for (const ChatPiece& p : render_chat(t, messages))
    if (p.trained || !trained_only) out += p.text;
  return out;
}

tok::Tokenizer fetched(const std::string& name) {
  const std::string dir = data_path("tokenizers/" + name);
  if (!std::filesystem::exists(dir + "/tokenizer.json"))
    throw std::runtime_error(dir + "/tokenizer.json is missing: run scripts/fetch-tokenizers.sh");
  return tok::Tokenizer::from_file(dir);
}

// Qwen2.5's template: each turn '<|im_start|>' + role + '\n' + content + '<|im_end|>\n'.
TEST(ChatTemplates, ChatmlMatchesQwenTemplate) {
  EXPECT_EQ(rendered(ChatTemplate::chatml, kChat),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n4<|im_end|>\n");
  EXPECT_EQ(rendered(ChatTemplate::chatml, kChat, true), " Hello! <|im_end|>4<|im_end|>");
}

// Qwen3's template (tests/data/tokenizers/qwen3): turns after the last user turn get
// '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') (the final one even
// with no reasoning); earlier assistant turns keep only what follows their '</think>'.
TEST(ChatTemplates, Qwen3MatchesQwen3Template) {
  EXPECT_EQ(rendered(ChatTemplate::qwen3, kChat),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n");
  const std::vector<Message> reasoning = {{"user", "a"},
                                          {"assistant", "<think>\nr1\n</think>\n\nb"},
                                          {"user", "c"},
                                          {"assistant", "<think>\n\nplan\n</think>\n\nanswer"}};
  EXPECT_EQ(rendered(ChatTemplate::qwen3, reasoning),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nplan\n</think>\n\nanswer<|im_end|>\n");
  EXPECT_EQ(rendered(ChatTemplate::qwen3, reasoning, true), "b<|im_end|><think>\nplan\n</think>\n\nanswer<|im_end|>");
}

// Llama 3's template: bos_token before the first message, every content `| trim`med.
TEST(ChatTemplates, Llama3MatchesLlamaTemplate) {
  EXPECT_EQ(rendered(ChatTemplate::llama3, kChat),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>");
  EXPECT_EQ(rendered(ChatTemplate::llama3, kChat, true), "Hello!<|eot_id|>4<|eot_id|>");
}

// DeepSeek V3's template: bos_token, then all system prompts joined by a blank line, then
// '<｜User｜>' + content and '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'.
TEST(ChatTemplates, DeepseekMatchesDeepseekTemplate) {
  std::vector<Message> chat = kChat;
  chat.push_back({"system", "Second system."});
  EXPECT_EQ(rendered(ChatTemplate::deepseek, chat),
            "<｜begin▁of▁sentence｜>Be brief.\n\nSecond system.<｜User｜>Hi<｜Assistant｜> Hello! "
            "<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>4<｜end▁of▁sentence｜>");
  EXPECT_EQ(rendered(ChatTemplate::deepseek, chat, true), " Hello! <｜end▁of▁sentence｜>4<｜end▁of▁sentence｜>");
}

TEST(ChatTemplates, DetectedFromTheTokenizersTemplate) {
  EXPECT_EQ(resolve_chat_template("", fetched("qwen3")), ChatTemplate::qwen3);
  EXPECT_EQ(resolve_chat_template("", fetched("llama3")), ChatTemplate::llama3);
  EXPECT_EQ(resolve_chat_template("", fetched("deepseek_v3")), ChatTemplate::deepseek);
  EXPECT_EQ(resolve_chat_template("llama3", fetched("qwen3")), ChatTemplate::llama3);  // the config wins
  EXPECT_EQ(error_of([] { resolve_chat_template("", tok::Tokenizer::bytes()); }),
            "chat data needs a chat template and the tokenizer's is missing: set data.chat_template to "
            "chatml, qwen3, llama3 or deepseek");
  EXPECT_EQ(error_of([] { resolve_chat_template("jinja", tok::Tokenizer::bytes()); }),
            "data.chat_template: unknown template \"jinja\" (chatml, qwen3, llama3 or deepseek)");
}

// Encoded with the real tokenizers: markers become their special ids, and the targets are the
// assistant content plus the end-of-turn id.
void expect_special_targets(const std::string& name, ChatTemplate t, const std::string& start,
                            const std::string& end_of_turn) {
  const tok::Tokenizer tokenizer = fetched(name);
  const Document doc = DocumentEncoder(tokenizer, Format::chat, t).encode(Example{{}, {}, {}, kChat});
  ASSERT_EQ(doc.ids.size(), doc.targets.size());
  EXPECT_EQ(doc.ids.front(), *tokenizer.token_to_id(start)) << name;
  const int32_t end = *tokenizer.token_to_id(end_of_turn);
  std::vector<int32_t> trained;
  for (size_t i = 0; i < doc.ids.size(); ++i)
    if (doc.targets[i]) trained.push_back(doc.ids[i]);
  std::vector<int32_t> expected;
  for (const std::string& content : {std::string(t == ChatTemplate::llama3 ? "Hello!" : " Hello! "), std::string("4")}) {
    std::vector<int32_t> ids = tokenizer.encode(content, false);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(end);
  }
  EXPECT_EQ(trained, expected) << name;
  EXPECT_EQ(tokenizer.decode(doc.ids, false), rendered(t, kChat)) << name;
}

TEST(ChatTemplates, RealTokenizersMakeSpecialIds) {
  expect_special_targets("qwen3", ChatTemplate::chatml, "<|im_start|>", "<|im_end|>");
  expect_special_targets("llama3", ChatTemplate::llama3, "<|begin_of_text|>", "<|eot_id|>");
  expect_special_targets("deepseek_v3", ChatTemplate::deepseek, "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>");
}

// Text documents start with BOS exactly when encode(text, true) would (or add_bos_token says so).
TEST(ChatTemplates, TextDocumentsFollowTheTokenizersBos) {
  Example ex;
  ex.text = "Hello";
  const Document qwen = DocumentEncoder(fetched("qwen3"), Format::text, ChatTemplate::chatml).encode(ex);
  EXPECT_EQ(qwen.ids, (std::vector<int32_t>{9707, 151645}));  // no BOS; EOS is <|im_end|>
  const tok::Tokenizer llama = fetched("llama3");
  const Document l = DocumentEncoder(llama, Format::text, ChatTemplate::llama3).encode(ex);
  // This tokenizer.json's post-processor adds no BOS and its config has no add_bos_token.
  EXPECT_EQ(l.ids.front(), llama.encode("Hello", true).front());
  EXPECT_EQ(l.ids.back(), 128001);
  const Document d = DocumentEncoder(fetched("deepseek_v3"), Format::text, ChatTemplate::deepseek).encode(ex);
  EXPECT_EQ(d.ids.front(), 0);
  EXPECT_EQ(d.ids.back(), 1);
}

}  // namespace
}  // namespace tessera::data
