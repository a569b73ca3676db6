// A CUDA graph captured from the work one thread queues on a stream, replayed with one launch.
// Capture runs in relaxed mode (the caching allocator may still reach cudaMalloc for a block it
// has not cached yet); everything the captured kernels read or write must stay allocated, at the
// same addresses, for as long as the graph is replayed: the caller keeps those tensors (inputs,
// outputs, weights, caches), and the blocks freed during capture return to the stream's cache,
// which only work queued on the same stream reuses (stream order keeps a replay and that work
// apart). In CPU-only builds capture() throws and nothing else is reachable.
#pragma once

#include <functional>

#include "core/device.h"

namespace tessera {

class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(CudaGraph&& other) noexcept;
  CudaGraph& operator=(CudaGraph&& other) noexcept;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Records what `work` queues on `stream` (it runs nothing) and instantiates it. Throws Error
  // when the capture fails (e.g. `work` synchronised), leaving the graph empty.
  void capture(Stream stream, const std::function<void()>& work);
  void replay(Stream stream) const;
  bool ready() const { return exec_ != nullptr; }

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

}  // namespace tessera
