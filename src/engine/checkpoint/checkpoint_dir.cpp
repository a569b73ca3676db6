#include "engine/checkpoint/checkpoint_dir.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <charconv>

#include "core/error.h"
#include "core/fault_injection.h"
#include "core/log.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/trainer_state.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDeleting = ".deleting";

// N of a folder name step-N written by save (canonical digits, fits in int64), or -1.
int64_t step_of(const std::string& name) {
  if (!name.starts_with("step-")) return -1;
  const std::string digits = name.substr(5);
  int64_t step = -1;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (error != std::errc() || end != digits.data() + digits.size() || digits.find_first_not_of("0123456789") != std::string::npos ||
      std::to_string(step) != digits)
    return -1;
  return step;
}

}  // namespace

std::vector<StepFolder> step_folders(const std::string& dir, bool warn) {
  std::vector<StepFolder> out;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return out;
  fs::directory_iterator it(dir, ec);
  TS_CHECK(!ec, "checkpoint.dir: cannot list {}: {}", dir, ec.message());
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".")) continue;
    const bool folder = entry.is_directory(ec);
    const int64_t step = step_of(name);
    if (folder && step >= 0) {
      out.push_back({step, entry.path()});
    } else if (warn && (folder || name.starts_with("step-"))) {
      spdlog::warn("checkpoint.dir: ignoring {}: {}", entry.path().string(),
                   !folder ? "a file, not a checkpoint folder"
                   : name.starts_with("step-") ? "not a checkpoint name (step-<N>, N a step number)"
                                               : "not a checkpoint (step-<N>)");
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
  return out;
}

void check_writable(const std::string& dir, int64_t bytes) {
  std::error_code ec;
  TS_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), "checkpoint.dir: {} is not a folder", dir);
  fs::create_directories(dir, ec);
  TS_CHECK(!ec, "checkpoint.dir: cannot create {}: {}", dir, ec.message());
  const std::string probe = (fs::path(dir) / ".write-probe").string();
  try {
    write_file(probe, std::string(4096, '\0'));
  } catch (const Error& e) {
    fs::remove(probe, ec);
    fail("checkpoint.dir: cannot write there: {}", e.what());
  }
  fs::remove(probe, ec);
  struct statvfs disk {};
  if (::statvfs(dir.c_str(), &disk) == 0) {
    const double free = static_cast<double>(disk.f_bavail) * static_cast<double>(disk.f_frsize);
    TS_CHECK(free >= static_cast<double>(bytes),
             "checkpoint.dir: {} has {:.1f} MiB free, a checkpoint of this job needs about {:.1f} MiB", dir,
             free / 1048576, static_cast<double>(bytes) / 1048576);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".step-") && name.ends_with(kDeleting)) fs::remove_all(entry.path(), ec);
  }
}

void discard(const fs::path& folder) {
  const fs::path hidden = folder.parent_path() / fmt::format(".{}{}", folder.filename().string(), kDeleting);
  try {
    fs::remove_all(hidden);
    fs::rename(folder, hidden);
    fsync_path(folder.parent_path().string());
    TS_CHECK(!fault_injected("prune"), "{}: deleting it stopped half-way (injected by TESSERA_FAULT_INJECT)",
             hidden.string());
    fs::remove_all(hidden);
  } catch (const fs::filesystem_error& e) {
    fail("{}: cannot delete: {}", folder.string(), e.code().message());
  }
}

void prune(const std::string& dir, const std::string& lineage, int64_t step, int64_t keep_last) {
  if (keep_last <= 0 || lineage.empty()) return;
  int64_t kept = 1;  // the checkpoint of `step`, just saved
  for (const StepFolder& folder : step_folders(dir)) {
    if (folder.step >= step) continue;
    try {
      const TrainerState state = read_trainer_state(folder.path.string());
      if (state.step != folder.step || state.lineage != lineage) continue;
    } catch (const Error&) {
      continue;  // not one this run can vouch for
    }
    if (kept < keep_last) {
      ++kept;
      continue;
    }
    try {
      discard(folder.path);
      spdlog::info("checkpoint.keep_last: deleted {}", folder.path.string());
    } catch (const Error& e) {
      spdlog::warn("checkpoint.keep_last: {} (left in place)", e.what());
    }
  }
}

}  // namespace tessera::checkpoint
