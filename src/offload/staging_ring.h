// A few pinned host buffers used in turn for asynchronous copies between the host and the GPU. A
// buffer is handed out again only once the copy that last used it has finished, so the host memory
// spent on staging stays bounded whatever the size of the model.
#pragma once

#include <vector>

#include "core/stream.h"
#include "core/tensor.h"

namespace tessera::offload {

class StagingRing {
 public:
  // `count` buffers of `bytes` each, allocated on first use.
  StagingRing(size_t bytes, int count) : bytes_(bytes), slots_(static_cast<size_t>(count)) {}

  // The next buffer as `n` elements of `dtype`, once the work queued on it earlier is done.
  Tensor next(int64_t n, DType dtype);
  // The buffer last handed out is in use by the work queued on `stream` so far.
  void used_on(Stream stream);
  // Waits for every buffer's work.
  void drain();

 private:
  struct Slot {
    Tensor bytes;
    Event done;
  };
  size_t bytes_;
  std::vector<Slot> slots_;
  size_t next_ = 0, last_ = 0;
};

}  // namespace tessera::offload
