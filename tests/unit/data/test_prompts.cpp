// Prompts for generation are encoded as training encodes documents: BOS when the tokenizer wants
// it, then the text; a conversation as the template renders it, with the assistant's turn opened.
#include <gtest/gtest.h>

#include "io/data/document.h"

using namespace tessera;
using namespace tessera::data;

TEST(Prompts, TextGetsBosAndNoEos) {
  const tok::Tokenizer bytes = tok::Tokenizer::bytes();
  const DocumentEncoder encoder(bytes, Format::completion, ChatTemplate::chatml);
  EXPECT_EQ(encoder.prompt("ab"), (std::vector<int32_t>{256, 'a', 'b'}));
  // The same ids as the prompt side of a training document.
  const Document doc = encoder.encode(Example{.text = "", .prompt = "ab", .completion = "c", .messages = {}});
  EXPECT_EQ(std::vector<int32_t>(doc.ids.begin(), doc.ids.begin() + 3), encoder.prompt("ab"));
}

TEST(Prompts, ChatOpensTheAssistantTurn) {
  const tok::Tokenizer bytes = tok::Tokenizer::bytes();
  const std::vector<Message> messages{{"system", "Be brief."}, {"user", "Hi"}};
  const std::vector<std::pair<ChatTemplate, std::string>> expected{
      {ChatTemplate::chatml, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
      {ChatTemplate::llama3, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                             "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
      {ChatTemplate::deepseek, "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>"},
  };
  for (const auto& [t, text] : expected) {
    const DocumentEncoder encoder(bytes, Format::chat, t);
    EXPECT_EQ(bytes.decode(encoder.chat_prompt(messages), false), text) << chat_template_name(t);
  }
}
