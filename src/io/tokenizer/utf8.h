// UTF-8 helpers and the GPT-2 byte <-> printable-character map used by ByteLevel.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::tok {

// Byte length of the UTF-8 sequence starting with lead (1 for invalid leads).
inline size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

// Byte offset of the first invalid UTF-8 sequence, or npos when s is valid.
size_t find_invalid_utf8(std::string_view s);
// Like Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Character classes as Rust's char methods define them (tokenizers relies on these).
bool is_whitespace(char32_t cp);
bool is_numeric(char32_t cp);

// GPT-2 ByteLevel alphabet: every byte maps to one printable character.
const std::string& byte_to_unicode(unsigned char b);
// The byte a ByteLevel character stands for, or -1 for characters outside the alphabet.
int unicode_to_byte(char32_t cp);

}  // namespace tessera::tok
