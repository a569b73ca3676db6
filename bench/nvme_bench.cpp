// NVMe swap throughput through the offload I/O layer: writes, then reads back, a file of GiB
// gibibytes with NvmeFile, staging through a PinnedPool of 4 x 64 MiB buffers, many requests in
// flight. O_DIRECT bypasses the page cache, so the figures are the disk's, not memory's (the
// third column says when the file system refused O_DIRECT and the page cache was used).
// bench/nvme_bench DIR GiB [block_kb = 1024] [queue_depth = 8]
// stdout: one line per figure, in the format of bench/nvme_dd.sh, its peer; logs go to stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "offload/nvme_file.h"
#include "offload/pinned_pool.h"

using namespace tessera;
using namespace tessera::offload;

namespace {

constexpr int kBuffers = 4;

// Moves the whole file through the pool's buffers, kBuffers transfers in flight; returns seconds.
double stream(NvmeFile& file, PinnedPool& pool, bool write) {
  std::deque<std::pair<NvmeFile::Ticket, PinnedPool::Buffer>> in_flight;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t offset = 0; offset < file.size(); offset += pool.buffer_bytes()) {
    if (static_cast<int>(in_flight.size()) == pool.count()) {
      file.wait(in_flight.front().first);
      in_flight.pop_front();  // the buffer goes back to the pool
    }
    PinnedPool::Buffer buf = pool.acquire();
    const int64_t bytes = std::min(pool.buffer_bytes(), file.size() - offset);
    NvmeFile::Ticket t = write ? file.write(offset, buf.data(), bytes) : file.read(offset, buf.data(), bytes);
    in_flight.emplace_back(t, std::move(buf));
  }
  for (auto& [t, buf] : in_flight) file.wait(t);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void print(const char* op, int64_t gib, double seconds, const NvmeFile& file, const NvmeOptions& o) {
  std::printf("%-8s %-5s %4ld GiB %7.2f GB/s  (block %ld KiB, queue depth %d, %s, %s)\n", "tessera", op, gib,
              gib * 1073741824.0 / seconds / 1e9, o.block_bytes / 1024, o.queue_depth,
              file.direct() ? "O_DIRECT" : "buffered: page cache", file.async() ? "io_uring" : "pread/pwrite");
}

}  // namespace

int main(int argc, char** argv) {
  init_logging(0, 1);
  if (argc < 3) {
    std::fprintf(stderr, "usage: nvme_bench DIR GiB [block_kb = 1024] [queue_depth = 8]\n");
    return 2;
  }
  try {
    const int64_t gib = std::stoll(argv[2]);
    NvmeOptions options{.path = argv[1]};
    if (argc > 3) options.block_bytes = std::stoll(argv[3]) * 1024;
    if (argc > 4) options.queue_depth = std::stoi(argv[4]);
    TS_CHECK(gib >= 1, "nvme_bench: GiB must be at least 1, got {}", argv[2]);
    const int64_t bytes = gib << 30;
    PinnedPool pool(std::min<int64_t>(64 << 20, bytes), kBuffers);
    for (int i = 0; i < kBuffers; ++i) {  // random bytes: nothing a disk could compress
      PinnedPool::Buffer buf = pool.acquire();
      std::mt19937_64 rng(i + 1);
      auto* words = static_cast<uint64_t*>(buf.data());
      for (int64_t j = 0; j < buf.bytes() / 8; ++j) words[j] = rng();
    }
    const std::string name = "nvme_bench." + std::to_string(::getpid());
    auto file = NvmeFile::create(options, name, bytes);
    const double write_s = stream(*file, pool, true);
    const double read_s = stream(*file, pool, false);
    print("write", gib, write_s, *file, options);
    print("read", gib, read_s, *file, options);
    const std::string path = file->file_path();
    file.reset();
    ::unlink(path.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nvme_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
