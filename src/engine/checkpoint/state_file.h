// The fp32 training state of a checkpoint in one HDF5 file: groups master/, adam_m/ and adam_v/
// each hold every parameter whole, under its Hugging Face name and shape, so any number of ranks
// can read back whichever slices they own. Ranks write their slices in turn (serial HDF5).
#pragma once

#include <string>
#include <vector>

#include "model/model_config_params.h"

namespace tessera::checkpoint {

inline constexpr const char* kStateGroups[] = {"master", "adam_m", "adam_v"};

class StateFile {
 public:
  // Creates `path` (replacing it) with a zero-filled f32 dataset per parameter in each group;
  // the file is flushed and closed, and a failure to do so is an error.
  static void create(const std::string& path, const std::vector<ParamSpec>& params);

  StateFile(const std::string& path, bool writable);
  ~StateFile();  // closes quietly: a writer calls close() to learn whether its data reached the file
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  // Elements [begin, end) of the flattened parameter `name` in `group`; shape is checked.
  void write(const std::string& group, const ParamSpec& param, int64_t begin, int64_t end, const float* data);
  void read(const std::string& group, const ParamSpec& param, int64_t begin, int64_t end, float* data);
  // Flushes and closes the file: "PATH: cannot write: ..." when the data did not reach it.
  void close();

 private:
  void transfer(const std::string& group, const ParamSpec& param, int64_t begin, int64_t end, float* data, bool write);
  std::string path_;
  long long file_ = -1;  // hid_t
};

}  // namespace tessera::checkpoint
