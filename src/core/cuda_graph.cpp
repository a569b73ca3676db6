#include "core/cuda_graph.h"

#include <utility>

#include "core/error.h"

#if TESSERA_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace tessera {

CudaGraph::CudaGraph(CudaGraph&& other) noexcept
    : graph_(std::exchange(other.graph_, nullptr)), exec_(std::exchange(other.exec_, nullptr)) {}

CudaGraph& CudaGraph::operator=(CudaGraph&& other) noexcept {
  if (this != &other) {
    CudaGraph gone(std::move(*this));
    graph_ = std::exchange(other.graph_, nullptr);
    exec_ = std::exchange(other.exec_, nullptr);
  }
  return *this;
}

#if TESSERA_WITH_CUDA

CudaGraph::~CudaGraph() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
}

void CudaGraph::capture(Stream stream, const std::function<void()>& work) {
  TS_CHECK(stream, "CudaGraph::capture: no stream (the legacy default stream cannot be captured)");
  *this = CudaGraph();
  TS_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  try {
    work();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(stream, &broken);  // ends the capture whatever went wrong
    if (broken) cudaGraphDestroy(broken);
    cudaGetLastError();
    throw;
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (ended != cudaSuccess || !graph) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    fail("CUDA graph capture failed: {} (the captured work synchronised or used another stream)",
         cudaGetErrorString(ended));
  }
  graph_ = graph;
  cudaGraphExec_t exec = nullptr;
  TS_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  exec_ = exec;
}

void CudaGraph::replay(Stream stream) const {
  TS_CHECK(exec_, "CudaGraph::replay: nothing was captured");
  TS_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream));
}

#else

CudaGraph::~CudaGraph() = default;

void CudaGraph::capture(Stream, const std::function<void()>&) {
  fail("CUDA graphs: this build has no CUDA backend");
}

void CudaGraph::replay(Stream) const { fail("CUDA graphs: this build has no CUDA backend"); }

#endif

}  // namespace tessera
