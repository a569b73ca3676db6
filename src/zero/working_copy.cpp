#include "zero/working_copy.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

namespace {

size_t largest_bytes(const std::vector<int64_t>& sizes, DType dtype) {
  int64_t most = 1;
  for (int64_t n : sizes) most = std::max(most, n);
  return static_cast<size_t>(most) * dtype_size(dtype);
}

}  // namespace

WorkingCopy::WorkingCopy(const std::vector<int64_t>& shard_sizes, DType dtype, Device device, Home home)
    : dtype_(dtype), device_(device), home_kind_(home), uploaded_(shard_sizes.size()),
      staging_(largest_bytes(shard_sizes, dtype), 2) {
  for (int64_t n : shard_sizes)
    home_.push_back(home == Home::host ? Tensor::empty_pinned({n}, dtype) : Tensor::empty({n}, dtype, device));
}

Stream WorkingCopy::stream() const { return device_.is_cuda() ? current_stream(device_.index) : nullptr; }

Tensor WorkingCopy::target(size_t unit, bool host) {
  TS_CHECK(!pending_.defined(), "WorkingCopy: target() twice without commit()");
  const Tensor& home = home_.at(unit);
  const bool home_on_host = home_kind_ == Home::host;
  if (host == home_on_host) {
    if (home_on_host) uploaded_[unit].synchronize();  // a copy to the device may still be reading it
    return home;
  }
  pending_staged_ = host;
  pending_ = host ? staging_.next(home.numel(), dtype_) : Tensor::empty({home.numel()}, dtype_, device_);
  return pending_;
}

void WorkingCopy::commit(size_t unit) {
  if (!pending_.defined()) return;
  copy_bytes(home_.at(unit), pending_, /*async=*/pending_staged_);  // device -> host waits
  if (pending_staged_) staging_.used_on(stream());
  pending_ = Tensor();
}

Tensor WorkingCopy::on_device(size_t unit) {
  const Tensor& home = home_.at(unit);
  if (home_kind_ == Home::device) return home;
  Tensor out = Tensor::empty({home.numel()}, dtype_, device_);
  copy_bytes(out, home, /*async=*/true);
  if (Stream s = stream()) uploaded_[unit].record(s);
  return out;
}

}  // namespace tessera
