#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tessera {

MappedFile map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TS_CHECK(fd >= 0, "cannot open: {}", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("not a regular file");
  }
  MappedFile file;
  file.size = static_cast<size_t>(st.st_size);
  if (file.size == 0) {  // mmap refuses empty mappings
    ::close(fd);
    return file;
  }
  void* addr = ::mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);  // the mapping keeps the file's pages reachable
  TS_CHECK(addr != MAP_FAILED, "cannot map: {}", std::strerror(mmap_errno));
  const size_t size = file.size;
  file.owner = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  file.bytes = static_cast<const unsigned char*>(addr);
  return file;
}

}  // namespace tessera
