#include "io/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace tessera::data {

static_assert(std::endian::native == std::endian::little, "shards are little-endian");

namespace {

constexpr char kMagic[8] = {'T', 'S', 'R', 'D', 'A', 'T', 'A', '\0'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHeaderBytes = 64;

struct RawHeader {
  char magic[8];
  uint32_t version, header_bytes;
  int64_t seq_len, count, vocab_size;
  uint64_t fingerprint;
  int64_t targets, reserved;
};
static_assert(sizeof(RawHeader) == kHeaderBytes);

RawHeader to_raw(const ShardHeader& h) {
  RawHeader r{};
  std::memcpy(r.magic, kMagic, sizeof kMagic);
  r.version = kVersion;
  r.header_bytes = kHeaderBytes;
  r.seq_len = h.seq_len;
  r.count = h.count;
  r.vocab_size = h.vocab_size;
  r.fingerprint = h.fingerprint;
  r.targets = h.targets;
  return r;
}

}  // namespace

ShardWriter::ShardWriter(std::string path, const ShardHeader& header)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), header_(header) {
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) fail("{}: cannot create: {}", tmp_, std::strerror(errno));
  header_.count = 0;
  const RawHeader raw = to_raw(header_);  // rewritten with the final count by commit()
  if (std::fwrite(&raw, sizeof raw, 1, file_) != 1) fail("{}: write failed: {}", tmp_, std::strerror(errno));
}

ShardWriter::~ShardWriter() {
  if (!file_) return;
  std::fclose(file_);
  std::remove(tmp_.c_str());
}

void ShardWriter::append(const std::vector<int32_t>& records) {
  if (records.empty()) return;
  if (std::fwrite(records.data(), sizeof(int32_t), records.size(), file_) != records.size())
    fail("{}: write failed: {}", tmp_, std::strerror(errno));
  header_.count += static_cast<int64_t>(records.size()) / (3 * header_.seq_len);
}

void ShardWriter::commit(int64_t targets) {
  header_.targets = targets;
  const RawHeader raw = to_raw(header_);
  bool ok = std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(&raw, sizeof raw, 1, file_) == 1 &&
            std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    fail("{}: cannot write the shard: {}", path_, std::strerror(errno));
  }
}

Shard Shard::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < kHeaderBytes) {
    ::close(fd);
    fail("{}: not a Tessera data shard (only {} bytes)", path, size);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail("{}: cannot map: {}", path, std::strerror(errno));
  Shard shard;
  shard.owner_ = std::shared_ptr<void>(map, [size](void* p) { ::munmap(p, size); });
  RawHeader raw;
  std::memcpy(&raw, map, sizeof raw);
  if (std::memcmp(raw.magic, kMagic, sizeof kMagic) != 0) fail("{}: not a Tessera data shard (bad magic)", path);
  if (raw.version != kVersion) fail("{}: shard version {}, this build reads {}", path, raw.version, kVersion);
  if (raw.seq_len < 2 || raw.seq_len > (int64_t{1} << 30) || raw.count < 0 || raw.header_bytes != kHeaderBytes)
    fail("{}: corrupt shard header (seq_len {}, count {})", path, raw.seq_len, raw.count);
  const uint64_t record_bytes = 3 * sizeof(int32_t) * static_cast<uint64_t>(raw.seq_len);
  const uint64_t body = size - kHeaderBytes;
  if (body % record_bytes != 0 || body / record_bytes != static_cast<uint64_t>(raw.count))
    fail("{}: truncated or corrupt shard: {} bytes for {} sequences of {} tokens", path, size, raw.count, raw.seq_len);
  shard.header_ = {raw.seq_len, raw.count, raw.vocab_size, raw.fingerprint, raw.targets};
  shard.records_ = reinterpret_cast<const int32_t*>(static_cast<const char*>(map) + kHeaderBytes);
  return shard;
}

}  // namespace tessera::data
