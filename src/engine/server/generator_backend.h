// server::Backend over the inference engine: prompts encoded as training encodes them (BOS where
// the tokenizer wants one; conversations through the model's chat template, the assistant's turn
// opened), requests and their events translated between the protocol's types and the
// Generator's, the Generator's QueueFull / Closed as the server's.
#pragma once

#include <memory>
#include <optional>

#include "engine/inference/generator.h"
#include "engine/server/backend.h"
#include "io/data/document.h"

namespace tessera::server {

class GeneratorBackend : public Backend {
 public:
  // chat_template: "" for the tokenizer's own (detected from its template); when there is none,
  // chat requests are refused (400) and completions still work.
  GeneratorBackend(inference::Generator& generator, std::shared_ptr<const tok::Tokenizer> tokenizer,
                   const std::string& chat_template);

  std::vector<int32_t> encode(const std::string& text) const override;
  std::vector<int32_t> encode_chat(const std::vector<ChatMessage>& messages) const override;
  uint64_t submit(const GenerationRequest& request, std::function<void(const TokenEvent&)> on_event) override;
  void cancel(uint64_t id) override;
  EngineStats stats() const override;
  int64_t context_length() const override;

  // The request the Generator gets for a protocol request, and the event the server gets for an
  // engine event (public for the tests).
  static inference::Request to_engine(const GenerationRequest& request);
  static TokenEvent to_server(const inference::Event& event);

 private:
  inference::Generator& generator_;
  std::shared_ptr<const tok::Tokenizer> tokenizer_;
  std::unique_ptr<data::DocumentEncoder> prompts_;  // completion prompts
  std::unique_ptr<data::DocumentEncoder> chats_;    // null: the model has no chat template
  std::string no_chat_;                             // why, for the error
};

}  // namespace tessera::server
