#include "offload/staging_ring.h"

#include "core/error.h"

namespace tessera::offload {

Tensor StagingRing::next(int64_t n, DType dtype) {
  const size_t need = static_cast<size_t>(n) * dtype_size(dtype);
  TS_CHECK(need <= bytes_, "staging buffer of {} bytes asked for {}", bytes_, need);
  last_ = next_;
  next_ = (next_ + 1) % slots_.size();
  Slot& slot = slots_[last_];
  slot.done.synchronize();
  if (!slot.bytes.defined()) slot.bytes = Tensor::empty_pinned({static_cast<int64_t>(bytes_)}, DType::U8);
  return Tensor::wrap(slot.bytes.data(), {n}, dtype, Device::cpu(), slot.bytes.storage());
}

void StagingRing::used_on(Stream stream) {
  if (stream) slots_[last_].done.record(stream);  // nullptr: a host copy, already complete
}

void StagingRing::drain() {
  for (const Slot& slot : slots_) slot.done.synchronize();
}

}  // namespace tessera::offload
