// `tessera env`: one line per rank (rank, local rank, host, device), printed in rank order by
// rank 0, so `mpirun -np 2 tessera env` shows that the launcher, MPI and GPUs line up.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "core/error.h"
#include "comm/communicator.h"
#include "core/stream.h"

namespace tessera::cli {

namespace {

constexpr int64_t kLine = 256;

void print_env() {
  const World& world = World::init();
  std::string line = fmt::format("rank {}/{} local_rank {}/{} host {} device {} ({}) threads {}", world.rank,
                                 world.size, world.local_rank, world.local_size, world.host, world.device.str(),
                                 device_name(world.device), world.cpu_threads);
  line.resize(kLine - 1);
  Tensor mine = Tensor::empty({kLine}, DType::U8);
  std::memcpy(mine.data(), line.c_str(), kLine);
  Tensor all = Tensor::empty({kLine * world.size}, DType::U8);
  auto comm = make_mpi_communicator(world);
  comm->all_gather(all, mine).wait();
  if (world.rank != 0) return;
  for (int r = 0; r < world.size; ++r) std::printf("%s\n", all.data_as<char>() + r * kLine);
}

}  // namespace

void add_env_command(CLI::App& app) {
  app.add_subcommand("env", "Show every rank's rank, local rank, host and device (run under mpirun)")
      ->callback(print_env);
}

}  // namespace tessera::cli
