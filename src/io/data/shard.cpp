#include "io/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/data/sequence.h"

namespace tessera::data {

static_assert(std::endian::native == std::endian::little, "shards are little-endian");

namespace {

constexpr char kMagic[8] = {'T', 'S', 'R', 'D', 'A', 'T', 'A', '\0'};
constexpr uint32_t kVersion = 2;  // 2: the checksum
constexpr uint32_t kHeaderBytes = 64;

struct RawHeader {
  char magic[8];
  uint32_t version, header_bytes;
  int64_t seq_len, count, vocab_size;
  uint64_t fingerprint;
  int64_t targets;
  uint64_t checksum;
};
static_assert(sizeof(RawHeader) == kHeaderBytes);
constexpr size_t kChecksummedHeaderBytes = offsetof(RawHeader, checksum);

constexpr uint64_t kFnvBasis = 14695981039346656037ull;

// FNV-1a over 32-bit words: a quarter of the multiplications of the bytewise form.
uint64_t hash_words(uint64_t h, const int32_t* words, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint32_t>(words[i])) * 1099511628211ull;
  return h;
}

uint64_t checksum(uint64_t body_hash, const RawHeader& raw) {
  int32_t words[kChecksummedHeaderBytes / 4];
  std::memcpy(words, &raw, sizeof words);
  return hash_words(body_hash, words, kChecksummedHeaderBytes / 4);
}

// Every record as the packer writes it (see packer.h); returns the number of targets.
int64_t check_records(const std::string& path, const int32_t* records, const RawHeader& h) {
  const int64_t n = h.seq_len, vocab = h.vocab_size;
  int64_t targets = 0;
  for (int64_t r = 0; r < h.count; ++r) {
    const int32_t* ids = records + r * 3 * n;
    const int32_t *labels = ids + n, *positions = ids + 2 * n;
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= vocab)
        fail("{}: corrupt shard: sequence {} token {} has id {}, outside the vocabulary of {}", path, r, i, ids[i],
             vocab);
      if (labels[i] != kIgnoreLabel && (labels[i] < 0 || labels[i] >= vocab))
        fail("{}: corrupt shard: sequence {} token {} has label {}, outside the vocabulary of {}", path, r, i,
             labels[i], vocab);
      targets += labels[i] != kIgnoreLabel;
      if (positions[i] != 0 && (i == 0 || positions[i] != positions[i - 1] + 1))
        fail("{}: corrupt shard: sequence {} token {} has position {} (positions count up from 0 in each "
             "document)", path, r, i, positions[i]);
    }
  }
  return targets;
}

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
    : path_(std::move(path)), tmp_(path_ + ".tmp"), header_(header), body_hash_(kFnvBasis) {
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
  body_hash_ = hash_words(body_hash_, records.data(), records.size());
}

void ShardWriter::commit(int64_t targets) {
  header_.targets = targets;
  RawHeader raw = to_raw(header_);
  raw.checksum = checksum(body_hash_, raw);
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
  if (raw.version == 1)
    fail("{}: a version 1 shard (no checksum, written by an older Tessera): run tessera prepare-data again", path);
  if (raw.version != kVersion) fail("{}: shard version {}, this build reads {}", path, raw.version, kVersion);
  if (raw.seq_len < 2 || raw.seq_len > (int64_t{1} << 30) || raw.count < 0 || raw.header_bytes != kHeaderBytes)
    fail("{}: corrupt shard header (seq_len {}, count {})", path, raw.seq_len, raw.count);
  const uint64_t record_bytes = 3 * sizeof(int32_t) * static_cast<uint64_t>(raw.seq_len);
  const uint64_t body = size - kHeaderBytes;
  if (body % record_bytes != 0 || body / record_bytes != static_cast<uint64_t>(raw.count))
    fail("{}: truncated or corrupt shard: {} bytes for {} sequences of {} tokens", path, size, raw.count, raw.seq_len);
  const auto* records = reinterpret_cast<const int32_t*>(static_cast<const char*>(map) + kHeaderBytes);
  if (checksum(hash_words(kFnvBasis, records, body / 4), raw) != raw.checksum)
    fail("{}: corrupt shard: the checksum does not match its contents (damaged on disk or in transfer; run "
         "tessera prepare-data again)", path);
  if (raw.vocab_size < 1 || raw.vocab_size > (int64_t{1} << 24))
    fail("{}: corrupt shard header (vocab size {})", path, raw.vocab_size);
  const int64_t targets = check_records(path, records, raw);
  if (targets != raw.targets)
    fail("{}: corrupt shard: the header counts {} targets, the sequences hold {}", path, raw.targets, targets);
  shard.header_ = {raw.seq_len, raw.count, raw.vocab_size, raw.fingerprint, raw.targets};
  shard.records_ = records;
  return shard;
}

}  // namespace tessera::data
