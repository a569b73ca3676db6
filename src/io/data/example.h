// One training example as read from a data file, before tokenization.
#pragma once

#include <string>
#include <vector>

namespace tessera::data {

// data.format: text {"text"}, completion {"prompt", "completion"}, chat {"messages"}.
enum class Format { text, completion, chat };

const char* format_name(Format format);

struct Message {
  std::string role;  // system | user | assistant
  std::string content;
};

struct Example {
  std::string text;                // format text
  std::string prompt, completion;  // format completion
  std::vector<Message> messages;   // format chat
};

}  // namespace tessera::data
