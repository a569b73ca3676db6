// Tokenizer speed: encodes a text file's lines, repeated, on N threads.
// Usage: tokenizer_bench TOKENIZER_JSON_OR_DIR TEXT_FILE REPEATS THREADS
// Prints: RESULT {"what":"tessera_tokenize", "threads":N, "mb_per_s":X, "tokens_per_s":Y}
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON_OR_DIR TEXT_FILE REPEATS THREADS\n", argv[0]);
    return 2;
  }
  try {
    auto tok = tessera::tok::Tokenizer::from_file(argv[1]);
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) tessera::fail("{}: cannot open file", argv[2]);
    std::stringstream ss;
    ss << in.rdbuf();
    // One document per line (newline kept), like the Python benchmark.
    std::vector<std::string> lines;
    std::string text = ss.str();
    for (size_t b = 0; b < text.size();) {
      size_t e = text.find('\n', b);
      e = e == std::string::npos ? text.size() : e + 1;
      lines.push_back(text.substr(b, e - b));
      b = e;
    }
    int repeats = std::stoi(argv[3]), threads = std::stoi(argv[4]);
    std::vector<std::string> docs;
    for (int r = 0; r < repeats; ++r) docs.insert(docs.end(), lines.begin(), lines.end());
    size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();

    std::atomic<size_t> next{0}, tokens{0};
    auto worker = [&] {
      size_t n = 0;
      for (size_t i; (i = next.fetch_add(1)) < docs.size();) n += tok.encode(docs[i], false).size();
      tokens += n;
    };
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("RESULT {\"what\":\"tessera_tokenize\", \"threads\":%d, \"mb_per_s\":%.3f, \"tokens_per_s\":%.0f}\n",
                threads, bytes / s / 1e6, tokens.load() / s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}
