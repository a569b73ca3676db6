// `tessera version`: what this binary is and which libraries it was built with.
#include <mpi.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"

#if TESSERA_WITH_CUDA
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

namespace tessera::cli {

namespace {

std::string mpi_library() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(text, &len);  // allowed before MPI_Init
  std::string s(text, len);
  if (auto cut = s.find_first_of(",\n"); cut != std::string::npos) s.resize(cut);
  return s;
}

void print_version() {
  std::printf("tessera %s (%s build)\n", TESSERA_VERSION, TESSERA_BUILD_TYPE);
#if TESSERA_WITH_CUDA
  std::printf("CUDA runtime %d.%d, cuBLAS %d.%d.%d, NCCL %d.%d.%d\n", CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10,
              CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH, NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
#else
  std::printf("CUDA: not built (CPU only)\n");
#endif
  std::printf("MPI: %s (MPI %d.%d)\n", mpi_library().c_str(), MPI_VERSION, MPI_SUBVERSION);
}

}  // namespace

void add_version_command(CLI::App& app) {
  app.add_subcommand("version", "Print the version, build type and the CUDA/cuBLAS/NCCL/MPI versions built in")
      ->callback(print_version);
}

}  // namespace tessera::cli
