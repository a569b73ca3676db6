// A temporary folder name every rank of the job agrees on (rank 0's process id in it).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "comm/communicator.h"

namespace tessera::testing_util {

inline std::string shared_dir(Communicator& world, const std::string& name) {
  Tensor pid = Tensor::from_vector<int64_t>({static_cast<int64_t>(::getpid())}, {1}, DType::I64);
  world.broadcast(pid, 0).wait();
  return (std::filesystem::temp_directory_path() / ("tessera-" + name + "-" + std::to_string(pid.data_as<int64_t>()[0])))
      .string();
}

}  // namespace tessera::testing_util
