#include "offload/nvme_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace tessera::offload {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string system_reason(int err) {
  std::string reason = std::strerror(err);
  if (err == ENOSPC) reason += " (disk full)";
  return reason;
}

void check_options(const NvmeOptions& o, int64_t bytes) {
  TS_CHECK(!o.path.empty(), "NVMe offload: no folder given for the swap files (offload path)");
  TS_CHECK(o.block_bytes > 0 && o.block_bytes % NvmeFile::kAlignment == 0 && o.block_bytes <= (int64_t{1} << 30),
           "NVMe offload: the I/O block must be a multiple of 4 KiB up to 1 GiB, got {} bytes", o.block_bytes);
  TS_CHECK(o.queue_depth >= 1 && o.queue_depth <= 4096, "NVMe offload: the I/O queue depth must be 1 to 4096, got {}",
           o.queue_depth);
  TS_CHECK(bytes >= 0, "NVMe offload: a swap file cannot have {} bytes", bytes);
}

// The folder exists, is a folder, can take a new file and has room for `bytes` (space the
// file being replaced holds counts as free).
void check_folder(const std::string& dir, const std::string& file, int64_t bytes) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) fail("NVMe offload path {} does not exist", dir);
    fail("NVMe offload path {}: {}", dir, std::strerror(err));
  }
  TS_CHECK(S_ISDIR(st.st_mode), "NVMe offload path {} is not a directory", dir);
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail("NVMe offload path {} is not writable: {}", dir, std::strerror(errno));
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) fail("NVMe offload path {}: cannot read free space: {}", dir, std::strerror(errno));
  int64_t free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
  struct stat old {};
  if (::stat(file.c_str(), &old) == 0 && S_ISREG(old.st_mode)) free_bytes += static_cast<int64_t>(old.st_blocks) * 512;
  TS_CHECK(bytes <= free_bytes, "NVMe offload path {} has {:.1f} GiB free, not enough for {} ({:.1f} GiB)", dir,
           free_bytes / kGiB, file, bytes / kGiB);
}

// Opens `file` for reading and writing, empty; with O_DIRECT when asked and supported.
int open_file(const std::string& file, bool& direct) {
  const int flags = O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC;
  if (direct) {
    int fd = ::open(file.c_str(), flags | O_DIRECT, 0600);
    if (fd >= 0) return fd;
    if (errno != EINVAL) fail("NVMe offload: cannot create {}: {}", file, std::strerror(errno));
    spdlog::warn("NVMe offload: the file system of {} does not support O_DIRECT (tmpfs?); using buffered I/O "
                 "through the page cache",
                 file);
    direct = false;
  }
  int fd = ::open(file.c_str(), flags, 0600);
  if (fd < 0) fail("NVMe offload: cannot create {}: {}", file, std::strerror(errno));
  return fd;
}

// Reserves the file's blocks now, so a full disk shows at the start and not mid-training.
void reserve(int fd, const std::string& file, int64_t bytes) {
  if (bytes == 0) return;
  if (::fallocate(fd, 0, 0, bytes) == 0) return;
  int err = errno;
  if ((err == EOPNOTSUPP || err == ENOSYS) && ::ftruncate(fd, bytes) == 0) return;
  if (err == EOPNOTSUPP || err == ENOSYS) err = errno;  // ftruncate's failure
  fail("NVMe offload: cannot reserve {:.2f} GiB for {}: {}", bytes / kGiB, file, system_reason(err));
}

}  // namespace

std::unique_ptr<NvmeFile> NvmeFile::create(const NvmeOptions& options, const std::string& name, int64_t bytes) {
  check_options(options, bytes);
  std::string file = options.path + (options.path.back() == '/' ? "" : "/") + name;
  check_folder(options.path, file, bytes);
  bool direct = options.direct;
  int fd = open_file(file, direct);
  try {
    reserve(fd, file, bytes);
    return std::unique_ptr<NvmeFile>(new NvmeFile(options, file, fd, direct, bytes));
  } catch (...) {
    ::close(fd);
    ::unlink(file.c_str());  // a reservation that failed leaves no half-made file behind
    throw;
  }
}

NvmeFile::NvmeFile(const NvmeOptions& options, std::string file_path, int fd, bool direct, int64_t size)
    : options_(options), file_path_(std::move(file_path)), fd_(fd), direct_(direct), size_(size),
      queue_(std::make_unique<IoQueue>(fd, options.queue_depth, options.io_uring)) {}

NvmeFile::~NvmeFile() {
  try {
    drain();
  } catch (const std::exception& e) {
    spdlog::error("NVMe offload: closing {}: {}", file_path_, e.what());
  }
  queue_.reset();
  ::close(fd_);
}

NvmeFile::Ticket NvmeFile::read(int64_t offset, void* buf, int64_t bytes) {
  return start(false, offset, static_cast<char*>(buf), bytes);
}

NvmeFile::Ticket NvmeFile::write(int64_t offset, const void* buf, int64_t bytes) {
  // The kernel only reads from buf for a write; IoOp carries one pointer type for both.
  return start(true, offset, static_cast<char*>(const_cast<void*>(buf)), bytes);
}

namespace {
std::atomic<int64_t> g_bytes_read{0}, g_bytes_written{0};
}  // namespace

int64_t NvmeFile::bytes_read_total() { return g_bytes_read.load(std::memory_order_relaxed); }
int64_t NvmeFile::bytes_written_total() { return g_bytes_written.load(std::memory_order_relaxed); }

NvmeFile::Ticket NvmeFile::start(bool write, int64_t offset, char* buf, int64_t bytes) {
  TS_CHECK(offset % kAlignment == 0 && bytes % kAlignment == 0 && reinterpret_cast<uintptr_t>(buf) % kAlignment == 0,
           "NVMe offload: {} of {} bytes at offset {} in {}: offset, size and buffer must be multiples of {}",
           write ? "write" : "read", bytes, offset, file_path_, kAlignment);
  TS_CHECK(offset >= 0 && bytes >= 0 && offset + bytes <= size_,
           "NVMe offload: {} of {} bytes at offset {} is outside {} ({} bytes)", write ? "write" : "read", bytes,
           offset, file_path_, size_);
  (write ? g_bytes_written : g_bytes_read).fetch_add(bytes, std::memory_order_relaxed);
  Ticket ticket = next_ticket_++;
  Transfer& transfer = transfers_[ticket];
  for (int64_t done = 0; done < bytes; done += options_.block_bytes) {
    queued_.push_back({ticket, write, buf + done, std::min(options_.block_bytes, bytes - done), offset + done});
    ++transfer.chunks_left;
  }
  progress(false);
  return ticket;
}

void NvmeFile::wait(Ticket ticket) {
  TS_CHECK(ticket >= 0 && ticket < next_ticket_, "NVMe offload: {} has no transfer {}", file_path_, ticket);
  auto it = transfers_.find(ticket);
  if (it == transfers_.end()) return;
  while (it->second.chunks_left > 0) progress(true);
  std::string error = std::move(it->second.error);
  transfers_.erase(it);
  if (!error.empty()) throw Error(error);
}

bool NvmeFile::done(Ticket ticket) {
  progress(false);
  auto it = transfers_.find(ticket);
  return it == transfers_.end() || it->second.chunks_left == 0;
}

void NvmeFile::fsync() {
  drain();
  if (::fdatasync(fd_) != 0) fail("NVMe offload: fsync of {} failed: {}", file_path_, system_reason(errno));
}

// Hands queued requests to the kernel, then handles what has finished; with `block`, waits for
// at least one completion when something is in flight.
void NvmeFile::progress(bool block) {
  submit_queued();
  bool waited = false;
  while (auto result = queue_->reap(block && !waited)) {
    waited = true;
    finish(*result);
    submit_queued();
  }
}

void NvmeFile::submit_queued() {
  bool any = false;
  while (!queued_.empty() && queue_->in_flight() < queue_->depth()) {
    const Chunk& c = queued_.front();
    uint64_t tag = next_tag_++;
    in_flight_.emplace(tag, c);
    queue_->push({tag, c.write, c.buf, c.bytes, c.offset});
    queued_.pop_front();
    any = true;
  }
  if (any) queue_->submit();
}

void NvmeFile::finish(const IoResult& result) {
  auto it = in_flight_.find(result.tag);
  Chunk c = it->second;
  in_flight_.erase(it);
  if (result.result == -EINTR || result.result == -EAGAIN) {  // nothing moved: ask again
    queued_.push_front(c);
    return;
  }
  if (result.result > 0 && result.result < c.bytes) {  // short transfer: the rest goes again
    c.buf += result.result;
    c.offset += result.result;
    c.bytes -= result.result;
    queued_.push_front(c);
    return;
  }
  Transfer& transfer = transfers_.at(c.ticket);
  --transfer.chunks_left;
  if (result.result == c.bytes || !transfer.error.empty()) return;
  std::string reason = result.result == 0 ? std::string("the file ended early") : system_reason(int(-result.result));
  transfer.error = fmt::format("NVMe offload: {} of {} bytes at offset {} in {} failed: {}", c.write ? "write" : "read",
                               c.bytes, c.offset, file_path_, reason);
}

void NvmeFile::drain() {
  while (!queued_.empty() || queue_->in_flight() > 0) progress(true);
}

}  // namespace tessera::offload
