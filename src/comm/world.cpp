#include "comm/world.h"

#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "core/stream.h"

namespace tessera {

namespace {
World* g_world = nullptr;

std::mutex g_hooks_mu;
std::map<int, std::function<void()>> g_hooks;
int g_next_hook = 0;

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
}  // namespace

const World& World::init() {
  if (g_world) return *g_world;
  int provided = 0;
  TS_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) == MPI_SUCCESS,
           "MPI_Init_thread failed");
  std::atexit(finalize_mpi);

  auto* w = new World();
  MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w->size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &w->local_rank);
  MPI_Comm_size(local, &w->local_size);
  MPI_Comm_free(&local);

  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  w->host = host;

  const int gpus = cuda_device_count();
  w->device = gpus > 0 ? Device::cuda(w->local_rank % gpus) : Device::cpu();
  if (w->device.is_cuda()) set_device(w->device.index);

  // Ranks on one host share its cores; oversubscribing them makes OpenMP spin against itself.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  w->cpu_threads = std::max(1, cores / w->local_size);
  omp_set_num_threads(w->cpu_threads);
  openblas_set_num_threads(w->cpu_threads);

  init_logging(w->rank, w->size);
  if (provided < MPI_THREAD_MULTIPLE)
    spdlog::warn("MPI provides thread level {} (< MPI_THREAD_MULTIPLE)", provided);
  g_world = w;
  return *g_world;
}

bool World::initialized() { return g_world != nullptr; }

const World& World::get() {
  TS_CHECK(g_world, "World::get() before World::init()");
  return *g_world;
}

int add_abort_hook(std::function<void()> hook) {
  std::lock_guard lock(g_hooks_mu);
  g_hooks.emplace(g_next_hook, std::move(hook));
  return g_next_hook++;
}

void remove_abort_hook(int id) {
  std::lock_guard lock(g_hooks_mu);
  g_hooks.erase(id);
}

void run_abort_hooks() {
  // Held while the hooks run, so that their owners cannot go away under them.
  std::lock_guard lock(g_hooks_mu);
  for (auto& [id, hook] : std::exchange(g_hooks, {})) hook();
}

void abort_world(int exit_code) {
  run_abort_hooks();
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized && g_world && g_world->size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace tessera
