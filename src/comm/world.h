// Who this process is in the job. Launched by mpirun, the world is MPI_COMM_WORLD; started
// alone it is a world of one (MPI runs as a singleton). Each rank takes the GPU of its local
// rank (ranks on one host, from MPI_Comm_split_type shared) modulo the GPUs present.
#pragma once

#include <functional>
#include <string>

#include "core/device.h"

namespace tessera {

struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
  std::string host;
  Device device;        // cuda:<local_rank % GPUs> where GPUs exist, else cpu
  int cpu_threads = 1;  // this rank's share of the host's cores, given to OpenMP and OpenBLAS

  // Initialises MPI once (later calls return the same world), picks the device, splits the
  // cores, sets up logging. MPI is finalised at exit.
  static const World& init();
  static bool initialized();
  static const World& get();  // after init()
};

// Ends the job on every rank from any one of them (for errors that leave ranks out of step):
// runs the abort hooks, then MPI_Abort.
[[noreturn]] void abort_world(int exit_code);

// Abort hooks release what would keep a rank from dying promptly: the NCCL communicator registers
// ncclCommAbort, which frees a rank blocked in an NCCL kernel whose peer is gone. The registry
// lives here, not in NCCL code, so CPU builds and the watchdog do not depend on NCCL.
int add_abort_hook(std::function<void()> hook);  // returns an id for remove_abort_hook
void remove_abort_hook(int id);                  // waits while the hooks are running
// Runs every hook once (later calls run nothing), from any thread.
void run_abort_hooks();

}  // namespace tessera
