// One swap file on a local (NVMe) disk, read and written asynchronously with many requests in
// flight. Callers lay their extents out at aligned() offsets and move data through 4096-aligned
// buffers (PinnedPool), which O_DIRECT needs; with O_DIRECT the page cache is bypassed, so host
// memory does not grow with the amount swapped.
//
// Thread-safety: none. One thread owns an NvmeFile and calls all of its methods.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "offload/io_queue.h"

namespace tessera::offload {

struct NvmeOptions {
  std::string path;                // folder for the swap files (must exist and be writable)
  int64_t block_bytes = 1 << 20;   // transfers split into requests of this size (multiple of 4096)
  int queue_depth = 8;             // requests in flight
  bool direct = true;              // O_DIRECT where the file system supports it; false: page cache
  bool io_uring = true;            // false: synchronous pread/pwrite (as when io_uring is unavailable)
};

class NvmeFile {
 public:
  using Ticket = int64_t;
  static constexpr int64_t kAlignment = 4096;

  // Creates (or truncates) options.path/name with `bytes` reserved (fallocate where supported).
  // Checks first, each failure one line naming the path: the folder exists, is a folder and is
  // writable, and has room for `bytes`. A file system without O_DIRECT (tmpfs) is not an error:
  // one warning, then buffered I/O.
  static std::unique_ptr<NvmeFile> create(const NvmeOptions& options, const std::string& name, int64_t bytes);
  ~NvmeFile();  // waits for requests still in flight (their errors are dropped), closes the file
  NvmeFile(const NvmeFile&) = delete;
  NvmeFile& operator=(const NvmeFile&) = delete;

  static int64_t aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

  // Start moving `bytes` between `buf` and the file at `offset`; all three multiples of 4096 (in
  // buffered mode too, so a layout bug shows on any disk) and inside the file. The buffer must
  // stay alive and untouched until wait() returns for the ticket.
  Ticket read(int64_t offset, void* buf, int64_t bytes);
  Ticket write(int64_t offset, const void* buf, int64_t bytes);
  // Blocks until the transfer is complete; throws one line with path, offset and the system's
  // reason if any part failed. A ticket already waited for returns at once.
  void wait(Ticket ticket);
  // Whether wait(ticket) would return at once (moves queued requests along; never blocks).
  bool done(Ticket ticket);
  // Waits for every request in flight, then flushes the file's data to the disk (checkpoints).
  void fsync();

  // Bytes this process has started moving from and to NVMe files, all of them together (metrics).
  static int64_t bytes_read_total();
  static int64_t bytes_written_total();

  bool direct() const { return direct_; }
  bool async() const { return queue_->async(); }
  const std::string& file_path() const { return file_path_; }
  int64_t size() const { return size_; }

 private:
  struct Chunk {  // one request of at most block_bytes
    Ticket ticket;
    bool write;
    char* buf;
    int64_t bytes;
    int64_t offset;
  };
  struct Transfer {  // what a ticket waits for
    int64_t chunks_left = 0;
    std::string error;  // the first failure
  };

  NvmeFile(const NvmeOptions& options, std::string file_path, int fd, bool direct, int64_t size);
  Ticket start(bool write, int64_t offset, char* buf, int64_t bytes);
  void progress(bool block);
  void submit_queued();
  void finish(const IoResult& result);
  void drain();

  NvmeOptions options_;
  std::string file_path_;
  int fd_;
  bool direct_;
  int64_t size_;
  std::unique_ptr<IoQueue> queue_;
  Ticket next_ticket_ = 0;
  uint64_t next_tag_ = 0;
  std::map<Ticket, Transfer> transfers_;
  std::deque<Chunk> queued_;                      // not handed to the kernel yet
  std::unordered_map<uint64_t, Chunk> in_flight_;  // by IoOp tag
};

}  // namespace tessera::offload
