// An output folder that appears whole or not at all. Its files are written into a hidden sibling,
// `<parent>/.<name>.partial-<pid>` (the same file system); commit() fsyncs that folder and renames
// it onto `out`, which must then be absent or an empty folder (rename(2) replaces an empty folder
// in one step and refuses a non-empty one, so nothing is ever overwritten). Destroyed without
// commit() (an error), the staging folder is removed; a killed process leaves only the hidden
// staging folder, which no loader takes for a model and the next StagedFolder for the same `out`
// removes once its process is gone.
#pragma once

#include <string>

namespace tessera {

class StagedFolder {
 public:
  // Fails, naming `flag` and `out`, when `out` exists and is not an empty folder.
  explicit StagedFolder(std::string out, const std::string& flag = "--out");
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;
  ~StagedFolder();

  // Where the files go until commit().
  const std::string& path() const { return staging_; }
  const std::string& out() const { return out_; }
  // fsyncs the staged files and the folder, then renames it onto out().
  void commit();

 private:
  std::string out_, flag_, staging_;
  bool committed_ = false;
};

}  // namespace tessera
