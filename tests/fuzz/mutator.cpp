#include "fuzz/mutator.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

namespace tessera::fuzz {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

constexpr std::array<std::string_view, 22> kNumbers{
    "0",          "-1",          "1",           "2147483647",          "2147483648",           "4294967295",
    "4294967296", "-2147483649", "65536",       "9223372036854775807", "9223372036854775808",  "-9223372036854775808",
    "18446744073709551616",      "1e308",       "1e999",               "-1e999",               "1e-400",
    "0.0",        "NaN",         "1000000000000", "3.5",               "00000000000000000000001"};

constexpr std::array<uint64_t, 14> kWords{0,          1,          2,          0x7f,       0xff,
                                          0x7fff,     0xffff,     0x7fffffff, 0x80000000, 0xffffffff,
                                          0x100000000, 0x7fffffffffffffff, 0x8000000000000000, ~0ull};

constexpr std::array<std::string_view, 26> kTokens{
    "{", "}", "[", "]", "\"", ":", ",", "\\", "\\u0000", "\\ud800", "null", "true", "-", "\n", "\n  ", "&a ",
    "*a", "<<: *a", "!!binary ", "---\n", "? ", "\xff", "\xc3", "\xe2\x82", "\x00", "\t"};

size_t position(Rng& rng, size_t size) {
  if (size == 0) return 0;
  if (rng.chance(50)) return rng.below(std::min<size_t>(size, 1024));
  return rng.below(size);
}

// The decimal numbers of s: [begin, end) of each run of digits (with a leading '-').
std::vector<std::pair<size_t, size_t>> numbers(const std::string& s) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < s.size() && out.size() < 4096;) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      continue;
    }
    size_t begin = i > 0 && s[i - 1] == '-' ? i - 1 : i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == 'e')) ++i;
    out.emplace_back(begin, i);
  }
  return out;
}

void mutate_once(std::string& s, const std::vector<std::string>& corpus, Rng& rng) {
  switch (rng.below(11)) {
    case 0:  // flip a bit
      if (!s.empty()) s[position(rng, s.size())] ^= static_cast<char>(1u << rng.below(8));
      break;
    case 1:  // set a byte
      if (!s.empty()) s[position(rng, s.size())] = static_cast<char>(rng.chance(50) ? rng.below(256) : kWords[rng.below(5)]);
      break;
    case 2:  // insert bytes
      s.insert(position(rng, s.size() + 1), std::string(1 + rng.below(4), static_cast<char>(rng.below(256))));
      break;
    case 3:  // delete a stretch
      if (!s.empty()) {
        const size_t at = position(rng, s.size());
        s.erase(at, 1 + rng.below(rng.chance(70) ? 4 : 256));
      }
      break;
    case 4:  // truncate
      s.resize(position(rng, s.size() + 1));
      break;
    case 5:  // duplicate a block
      if (!s.empty()) {
        const size_t at = position(rng, s.size());
        const std::string block = s.substr(at, 1 + rng.below(64));
        s.insert(position(rng, s.size() + 1), block);
      }
      break;
    case 6: {  // splice: our head, another input's tail
      const std::string& other = corpus[rng.below(corpus.size())];
      const size_t cut = position(rng, s.size() + 1), from = position(rng, other.size() + 1);
      s = s.substr(0, cut) + other.substr(from);
      break;
    }
    case 7:
    case 8: {  // a decimal number
      const auto found = numbers(s);
      if (found.empty()) return mutate_once(s, corpus, rng);
      const auto [begin, end] = found[rng.below(found.size())];
      s.replace(begin, end - begin, std::string(kNumbers[rng.below(kNumbers.size())]));
      break;
    }
    case 9: {  // a little-endian length or count
      if (s.size() < 8) return mutate_once(s, corpus, rng);
      const size_t width = rng.chance(50) ? 4 : 8;
      size_t at = position(rng, s.size() - width + 1);
      if (rng.chance(50)) at &= ~size_t{3};  // fields are usually aligned
      uint64_t value = kWords[rng.below(kWords.size())];
      if (rng.chance(25)) {  // the old value nudged
        uint64_t old = 0;
        std::memcpy(&old, s.data() + at, width);
        value = old + (rng.chance(50) ? 1 : -1) * static_cast<int64_t>(1 + rng.below(16));
      }
      std::memcpy(s.data() + at, &value, width);
      break;
    }
    default: {  // a token of the formats
      const std::string_view t = kTokens[rng.below(kTokens.size())];
      s.insert(position(rng, s.size() + 1), t.empty() ? std::string(1, '\0') : std::string(t));
      break;
    }
  }
}

}  // namespace

std::string mutant(const std::vector<std::string>& corpus, uint64_t seed, uint64_t index) {
  Rng rng(seed * 0x100000001B3ull ^ (index + 1) * 0x9E3779B97F4A7C15ull);
  std::string s = corpus[index % corpus.size()];
  const uint64_t count = 1 + rng.below(rng.chance(70) ? 2 : 4);
  for (uint64_t k = 0; k < count; ++k) mutate_once(s, corpus, rng);
  return s;
}

}  // namespace tessera::fuzz
