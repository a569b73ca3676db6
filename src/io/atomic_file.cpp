#include "io/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/fault_injection.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

// fsync of the folder makes a rename inside it durable.
void sync_parent_dir(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the data itself is already synced
  ::fsync(fd);
  ::close(fd);
}

// rename() that fails with EEXIST instead of replacing; file systems without RENAME_NOREPLACE
// fall back to a check just before the rename.
int rename_no_replace(const char* from, const char* to) {
  if (::renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  if (::access(to, F_OK) == 0) {
    errno = EEXIST;
    return -1;
  }
  return ::rename(from, to);
}

}  // namespace

AtomicFile::AtomicFile(std::string path, Existing existing)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp"), existing_(existing) {
  TS_CHECK(existing_ == Existing::Replace || !fs::exists(path_), "{}: exists (nothing was overwritten)", path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TS_CHECK(fd_ >= 0, "{}: cannot create: {}", tmp_path_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  TS_CHECK(fd_ >= 0, "{}: write after commit", path_);
  const char* p = static_cast<const char*>(data);
  // The test hook (core/fault_injection.h) fires half-way through the bytes: a full disk or a
  // kill in the middle of the file.
  write_all(p, size / 2);
  const int injected = injected_write_error(path_);
  TS_CHECK(injected == 0, "{}: write failed: {}", tmp_path_, error_text(injected, true));
  write_all(p + size / 2, size - size / 2);
}

void AtomicFile::write_all(const char* p, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, std::min<size_t>(size, 1u << 30));
    if (n < 0 && errno == EINTR) continue;
    TS_CHECK(n > 0, "{}: write failed: {}", tmp_path_, std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFile::commit() {
  TS_CHECK(fd_ >= 0, "{}: committed twice", path_);
  TS_CHECK(::fsync(fd_) == 0, "{}: fsync failed: {}", tmp_path_, std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  TS_CHECK(::close(fd) == 0, "{}: close failed: {}", tmp_path_, std::strerror(errno));
  const int renamed = existing_ == Existing::Refuse ? rename_no_replace(tmp_path_.c_str(), path_.c_str())
                                                    : ::rename(tmp_path_.c_str(), path_.c_str());
  TS_CHECK(renamed == 0, "{}: cannot rename into place: {}", path_,
           errno == EEXIST ? "it appeared meanwhile (nothing was overwritten)" : std::strerror(errno));
  committed_ = true;
  sync_parent_dir(path_);
}

void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit();
}

}  // namespace tessera
