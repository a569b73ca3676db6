#include "offload/io_queue.h"

#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace tessera::offload {

struct IoQueue::Ring {
  io_uring ring{};
};

namespace {

// Why io_uring cannot serve here, or "" when it can; `ring` is initialised only on "".
std::string open_ring(io_uring& ring, int depth) {
  int rc = io_uring_queue_init(static_cast<unsigned>(depth), &ring, 0);
  if (rc < 0) return fmt::format("io_uring_queue_init: {}", std::strerror(-rc));
  // IORING_OP_READ/WRITE came with Linux 5.6; earlier rings fail every request with EINVAL.
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  bool ok = probe && io_uring_opcode_supported(probe, IORING_OP_READ) &&
            io_uring_opcode_supported(probe, IORING_OP_WRITE);
  if (probe) io_uring_free_probe(probe);
  if (ok) return "";
  io_uring_queue_exit(&ring);
  return "the kernel's io_uring has no READ/WRITE operations (Linux < 5.6)";
}

void warn_synchronous_once(const std::string& why) {
  static std::once_flag once;
  std::call_once(once, [&] {
    spdlog::warn("NVMe offload: io_uring unavailable ({}); using synchronous pread/pwrite, one request at a time",
                 why);
  });
}

}  // namespace

IoQueue::IoQueue(int fd, int depth, bool use_io_uring) : fd_(fd), depth_(depth) {
  TS_CHECK(depth >= 1, "I/O queue depth must be at least 1, got {}", depth);
  if (!use_io_uring) return;
  auto ring = std::make_unique<Ring>();
  std::string why = open_ring(ring->ring, depth);
  if (why.empty())
    ring_ = std::move(ring);
  else
    warn_synchronous_once(why);
}

IoQueue::~IoQueue() {
  // The owner reaps everything first; exiting the ring with requests in flight would leave the
  // kernel writing into buffers that may be gone.
  if (ring_) io_uring_queue_exit(&ring_->ring);
}

void IoQueue::push(const IoOp& op) {
  TS_CHECK(in_flight_ < depth_, "I/O queue: {} operations already in flight", in_flight_);
  ++in_flight_;
  if (!ring_) {
    ssize_t n = op.write ? ::pwrite(fd_, op.buf, op.bytes, op.offset) : ::pread(fd_, op.buf, op.bytes, op.offset);
    done_.push_back({op.tag, n < 0 ? -errno : n});
    return;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  TS_CHECK(sqe, "I/O queue: io_uring submission queue full");
  if (op.write)
    io_uring_prep_write(sqe, fd_, op.buf, static_cast<unsigned>(op.bytes), static_cast<uint64_t>(op.offset));
  else
    io_uring_prep_read(sqe, fd_, op.buf, static_cast<unsigned>(op.bytes), static_cast<uint64_t>(op.offset));
  io_uring_sqe_set_data64(sqe, op.tag);
}

void IoQueue::submit() {
  if (!ring_) return;
  while (io_uring_sq_ready(&ring_->ring) > 0) {
    int rc = io_uring_submit(&ring_->ring);
    if (rc == -EINTR || rc == -EAGAIN) continue;  // interrupted, or the kernel briefly short of memory
    if (rc < 0) fail("I/O queue: io_uring_submit failed: {}", std::strerror(-rc));
  }
}

std::optional<IoResult> IoQueue::reap(bool block) {
  if (in_flight_ == 0) return std::nullopt;
  if (!ring_) {
    IoResult r = done_.front();
    done_.pop_front();
    --in_flight_;
    return r;
  }
  io_uring_cqe* cqe = nullptr;
  int rc;
  do {
    rc = block ? io_uring_wait_cqe(&ring_->ring, &cqe) : io_uring_peek_cqe(&ring_->ring, &cqe);
  } while (rc == -EINTR);
  if (rc == -EAGAIN) return std::nullopt;  // peek: nothing finished yet
  if (rc < 0) fail("I/O queue: waiting for io_uring completions failed: {}", std::strerror(-rc));
  IoResult r{io_uring_cqe_get_data64(cqe), cqe->res};
  io_uring_cqe_seen(&ring_->ring, cqe);
  --in_flight_;
  return r;
}

}  // namespace tessera::offload
