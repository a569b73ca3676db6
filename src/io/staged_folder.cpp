#include "io/staged_folder.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  TS_CHECK(fd >= 0, "{}: cannot open to sync: {}", path.string(), std::strerror(errno));
  const int synced = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  TS_CHECK(synced == 0, "{}: fsync failed: {}", path.string(), std::strerror(error));
}

fs::path parent_of(const fs::path& out) {
  const fs::path parent = out.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// "<parent>/.<name>.partial-"
std::string staging_prefix(const fs::path& out) {
  return (parent_of(out) / ("." + out.filename().string() + ".partial-")).string();
}

// Staging folders of `out` left by processes that no longer run (a killed export).
void remove_stale(const fs::path& out) {
  const std::string prefix = staging_prefix(out);
  const std::string name_prefix = fs::path(prefix).filename().string();
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(parent_of(out), ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(name_prefix)) continue;
    const std::string pid_text = name.substr(name_prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // still running (or not ours to judge)
    std::error_code removed;
    fs::remove_all(e.path(), removed);
    if (!removed) spdlog::info("{}: removed {}, left by an interrupted write", out.string(), e.path().string());
  }
}

}  // namespace

StagedFolder::StagedFolder(std::string out, const std::string& flag) : out_(std::move(out)), flag_(flag) {
  TS_CHECK(!out_.empty(), "{}: no folder given", flag_);
  while (out_.size() > 1 && out_.back() == '/') out_.pop_back();
  TS_CHECK(!fs::exists(out_) || fs::is_directory(out_), "{} {}: exists and is not a folder (nothing was overwritten)",
           flag_, out_);
  TS_CHECK(!fs::exists(out_) || fs::is_empty(out_), "{} {}: exists and is not empty (nothing was overwritten)", flag_,
           out_);
  fs::create_directories(parent_of(out_));
  remove_stale(out_);
  staging_ = staging_prefix(out_) + std::to_string(::getpid());
  fs::remove_all(staging_);
  std::error_code ec;
  fs::create_directory(staging_, ec);
  TS_CHECK(!ec, "{} {}: cannot create {}: {}", flag_, out_, staging_, ec.message());
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void StagedFolder::commit() {
  TS_CHECK(!committed_, "{}: committed twice", out_);
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(staging_))
    fsync_path(e.path(), e.is_directory());
  fsync_path(staging_, true);
  if (::rename(staging_.c_str(), out_.c_str()) != 0) {
    const int error = errno;
    committed_ = true;  // the finished output stays where it is, named in the error
    TS_CHECK(error != ENOTEMPTY && error != EEXIST && error != ENOTDIR,
             "{} {}: appeared meanwhile and is not an empty folder (nothing was overwritten; the output is in {})",
             flag_, out_, staging_);
    fail("{} {}: cannot rename {} into place: {} (the output is in {})", flag_, out_, staging_, std::strerror(error),
         staging_);
  }
  committed_ = true;
  fsync_path(parent_of(out_), true);
}

}  // namespace tessera
