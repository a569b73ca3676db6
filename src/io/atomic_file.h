// A file that appears whole or not at all: bytes go to `<path>.tmp`; commit() fsyncs it, renames
// it onto `path` and fsyncs the folder, so a crash or an error never leaves a truncated file
// under the real name. Destroyed without commit(), the temporary file is removed.
#pragma once

#include <cstdint>
#include <string>

namespace tessera {

class AtomicFile {
 public:
  // Refuse: `path` must not exist now, and commit() will not replace a file that appeared since.
  enum class Existing { Replace, Refuse };

  explicit AtomicFile(std::string path, Existing existing = Existing::Replace);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(const void* data, size_t size);
  uint64_t bytes_written() const { return written_; }
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_path_; }

 private:
  void write_all(const char* data, size_t size);

  std::string path_, tmp_path_;
  Existing existing_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// The whole of `content` as `path`, atomically (replacing an existing file).
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace tessera
