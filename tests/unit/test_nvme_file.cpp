// The NVMe offload I/O layer: swap files read and written with many requests in flight, its
// checks before anything is written, and the bounded pinned staging pool.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "offload/nvme_file.h"
#include "offload/pinned_pool.h"
#include "error_text.h"
#include "swap_dir.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::offload;
using tessera::testing_util::error_of;
using tessera::testing_util::SwapDir;

namespace {

constexpr int64_t kKiB = 1024, kMiB = 1024 * 1024;

void fill_random(void* buf, int64_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto* words = static_cast<uint64_t*>(buf);
  for (int64_t i = 0; i < bytes / 8; ++i) words[i] = rng() | 1;  // never a zero word
}

// Writes extents of uneven sizes, all in flight at once, reads them back into buffers holding
// other bytes, waiting out of order, and compares.
void round_trip(const NvmeOptions& options, NvmeFile& file) {
  const std::vector<int64_t> sizes{3 * kMiB, kMiB + 5 * 4096, 2 * kMiB - 3 * 4096, 4096, 64 * kKiB, 1536 * kKiB};
  std::vector<int64_t> offsets;
  int64_t end = 0;
  for (int64_t s : sizes) {
    offsets.push_back(end);
    end += NvmeFile::aligned(s);
  }
  ASSERT_LE(end, file.size());
  PinnedPool written(3 * kMiB, static_cast<int>(sizes.size())), read(3 * kMiB, static_cast<int>(sizes.size()));
  std::vector<PinnedPool::Buffer> out, in;
  std::vector<NvmeFile::Ticket> tickets;
  for (size_t i = 0; i < sizes.size(); ++i) {
    out.push_back(written.acquire());
    fill_random(out[i].data(), sizes[i], 100 + i);
    tickets.push_back(file.write(offsets[i], out[i].data(), sizes[i]));
  }
  for (size_t i = sizes.size(); i-- > 0;) file.wait(tickets[i]);
  tickets.clear();
  for (size_t i = 0; i < sizes.size(); ++i) {
    in.push_back(read.acquire());
    std::memset(in[i].data(), 0xA5, sizes[i]);
    tickets.push_back(file.read(offsets[i], in[i].data(), sizes[i]));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    file.wait(tickets[i]);
    EXPECT_TRUE(file.done(tickets[i]));
    EXPECT_EQ(std::memcmp(in[i].data(), out[i].data(), sizes[i]), 0)
        << "extent " << i << " (" << sizes[i] << " bytes), block " << options.block_bytes;
  }
}

NvmeOptions small_blocks(const fs::path& dir) {
  return NvmeOptions{.path = dir.string(), .block_bytes = 64 * kKiB, .queue_depth = 4};
}

}  // namespace

TEST(NvmeFile, RoundTripWithManyRequestsInFlight) {
  SwapDir dir;
  NvmeOptions options = small_blocks(dir.path);
  auto file = NvmeFile::create(options, "swap.bin", 8 * kMiB);
  EXPECT_EQ(file->file_path(), (dir.path / "swap.bin").string());
  EXPECT_EQ(fs::file_size(file->file_path()), uint64_t(8 * kMiB));
  round_trip(options, *file);
  file->fsync();
}

TEST(NvmeFile, RoundTripBufferedAndSynchronous) {
  SwapDir dir;
  NvmeOptions buffered = small_blocks(dir.path);
  buffered.direct = false;
  auto a = NvmeFile::create(buffered, "buffered.bin", 8 * kMiB);
  EXPECT_FALSE(a->direct());
  round_trip(buffered, *a);

  NvmeOptions synchronous = small_blocks(dir.path);
  synchronous.io_uring = false;
  auto b = NvmeFile::create(synchronous, "sync.bin", 8 * kMiB);
  EXPECT_FALSE(b->async());
  round_trip(synchronous, *b);
}

// A fresh folder on /dev/shm (tmpfs), removed afterwards; `reason` says why there is none.
struct ShmDir {
  ShmDir() {
    if (!fs::is_directory("/dev/shm") || ::access("/dev/shm", W_OK) != 0) {
      reason = "no writable /dev/shm";
      return;
    }
    path = fs::path("/dev/shm") / ("tessera-nvme-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~ShmDir() {
    if (!path.empty()) fs::remove_all(path);
  }
  fs::path path;
  std::string reason;
};

// /dev/shm is tmpfs: older kernels refuse O_DIRECT there, which must fall back, not fail.
TEST(NvmeFile, TmpfsWorksWithOrWithoutDirectIo) {
  ShmDir dir;
  if (!dir.reason.empty()) GTEST_SKIP() << dir.reason;
  NvmeOptions options = small_blocks(dir.path);
  auto file = NvmeFile::create(options, "swap.bin", 8 * kMiB);
  round_trip(options, *file);
}

// Where the kernel refuses O_DIRECT on tmpfs (before Linux 6.6), the file is opened buffered and
// the bytes still come back.
TEST(NvmeFile, NoDirectIoFallsBackToBufferedIo) {
  ShmDir dir;
  if (!dir.reason.empty()) GTEST_SKIP() << dir.reason;
  const fs::path probe = dir.path / "probe";
  const int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0600);
  if (fd >= 0) {
    ::close(fd);
    GTEST_SKIP() << "this kernel's tmpfs accepts O_DIRECT (Linux 6.6 and later): there is no fallback to take";
  }
  ASSERT_EQ(errno, EINVAL) << "opening " << probe << " with O_DIRECT: " << std::strerror(errno);
  NvmeOptions options = small_blocks(dir.path);
  auto file = NvmeFile::create(options, "swap.bin", 8 * kMiB);
  EXPECT_FALSE(file->direct());
  round_trip(options, *file);
}

TEST(NvmeFile, FolderErrorsNameThePath) {
  SwapDir dir;
  const std::string missing = (dir.path / "nope").string();
  EXPECT_EQ(error_of([&] { NvmeFile::create({.path = missing}, "swap.bin", kMiB); }),
            "NVMe offload path " + missing + " does not exist");
  const std::string plain = (dir.path / "file").string();
  std::ofstream(plain) << "x";
  EXPECT_EQ(error_of([&] { NvmeFile::create({.path = plain}, "swap.bin", kMiB); }),
            "NVMe offload path " + plain + " is not a directory");
  EXPECT_EQ(error_of([&] { NvmeFile::create({.path = ""}, "swap.bin", kMiB); }),
            "NVMe offload: no folder given for the swap files (offload path)");
}

TEST(NvmeFile, NotEnoughSpaceFailsBeforeWriting) {
  SwapDir dir;
  const int64_t petabyte = int64_t{1} << 50;
  std::string error = error_of([&] { NvmeFile::create({.path = dir.path.string()}, "swap.bin", petabyte); });
  EXPECT_EQ(error.rfind("NVMe offload path " + dir.path.string() + " has ", 0), 0u) << error;
  EXPECT_NE(error.find("GiB free, not enough for " + (dir.path / "swap.bin").string() + " (1048576.0 GiB)"),
            std::string::npos)
      << error;
  EXPECT_FALSE(fs::exists(dir.path / "swap.bin"));
}

TEST(NvmeFile, BadOptionsAndRequests) {
  SwapDir dir;
  EXPECT_EQ(error_of([&] { NvmeFile::create({.path = dir.path.string(), .block_bytes = 1000}, "s", kMiB); }),
            "NVMe offload: the I/O block must be a multiple of 4 KiB up to 1 GiB, got 1000 bytes");
  EXPECT_EQ(error_of([&] { NvmeFile::create({.path = dir.path.string(), .queue_depth = 0}, "s", kMiB); }),
            "NVMe offload: the I/O queue depth must be 1 to 4096, got 0");
  auto file = NvmeFile::create({.path = dir.path.string()}, "swap.bin", kMiB);
  PinnedPool pool(kMiB, 1);
  auto buf = pool.acquire();
  const std::string path = file->file_path();
  EXPECT_EQ(error_of([&] { file->write(100, buf.data(), 4096); }),
            "NVMe offload: write of 4096 bytes at offset 100 in " + path + ": offset, size and buffer must be "
            "multiples of 4096");
  EXPECT_EQ(error_of([&] { file->read(0, static_cast<char*>(buf.data()) + 8, 4096); }),
            "NVMe offload: read of 4096 bytes at offset 0 in " + path + ": offset, size and buffer must be "
            "multiples of 4096");
  EXPECT_EQ(error_of([&] { file->read(kMiB - 4096, buf.data(), 8192); }),
            "NVMe offload: read of 8192 bytes at offset 1044480 is outside " + path + " (1048576 bytes)");
}

// A failed request reports the path, the offset and the system's reason when waited for; here the
// file shrinks under a pending read, so the read finds its end early.
TEST(NvmeFile, FailedReadNamesPathAndOffset) {
  SwapDir dir;
  NvmeOptions options = small_blocks(dir.path);
  auto file = NvmeFile::create(options, "swap.bin", kMiB);
  PinnedPool pool(kMiB, 1);
  auto buf = pool.acquire();
  fill_random(buf.data(), kMiB, 7);
  file->wait(file->write(0, buf.data(), kMiB));
  ASSERT_EQ(::truncate(file->file_path().c_str(), kMiB - 64 * kKiB), 0);  // the last block goes
  auto ticket = file->read(0, buf.data(), kMiB);
  EXPECT_EQ(error_of([&] { file->wait(ticket); }),
            "NVMe offload: read of 65536 bytes at offset 983040 in " + file->file_path() +
                " failed: the file ended early");
  file->wait(ticket);  // reported once; the ticket is gone
}

TEST(PinnedPool, BuffersAreAlignedAndDisjoint) {
  PinnedPool pool(10000, 3);
  EXPECT_EQ(pool.buffer_bytes(), 12288);
  auto a = pool.acquire(), b = pool.acquire(), c = pool.acquire();
  std::vector<char*> starts;
  for (auto* buf : {&a, &b, &c}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % 4096, 0u);
    EXPECT_EQ(buf->bytes(), 12288);
    starts.push_back(static_cast<char*>(buf->data()));
  }
  std::sort(starts.begin(), starts.end());
  EXPECT_GE(starts[1] - starts[0], 12288);
  EXPECT_GE(starts[2] - starts[1], 12288);
  EXPECT_EQ(pool.available(), 0);
  a.reset();
  EXPECT_EQ(pool.available(), 1);
}

TEST(PinnedPool, AcquireBlocksUntilABufferComesBack) {
  PinnedPool pool(4096, 2);
  auto a = pool.acquire();
  auto b = pool.acquire();
  void* a_data = a.data();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto c = pool.acquire();
    got = true;
    EXPECT_EQ(c.data(), a_data);  // the one given back
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(got.load());
  { PinnedPool::Buffer moved = std::move(a); }  // returns on destruction
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(pool.available(), 1);
}
