#include "core/tensor.h"

#include <cstring>

#include "core/error.h"
#include "core/memory.h"
#include "core/stream.h"

#if TESSERA_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace tessera {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

namespace {
void check_shape(const Shape& shape) {
  for (int64_t d : shape) TS_CHECK(d >= 0, "invalid tensor shape {}", shape_str(shape));
}
}  // namespace

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = allocate(t.nbytes(), device);
  return t;
}

Tensor Tensor::empty_pinned(Shape shape, DType dtype) {
  check_shape(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.storage_ = allocate_pinned(t.nbytes());
  return t;
}

Tensor Tensor::wrap(void* data, Shape shape, DType dtype, Device device, std::shared_ptr<void> owner) {
  check_shape(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  // Aliasing constructor: points at `data`, keeps `owner` alive (nothing when owner is null).
  t.storage_ = std::shared_ptr<void>(std::move(owner), data);
  if (!t.storage_) t.storage_ = std::shared_ptr<void>(data, [](void*) {});
  return t;
}

int64_t Tensor::size(int dim) const {
  int n = ndim();
  int d = dim < 0 ? dim + n : dim;
  TS_CHECK(d >= 0 && d < n, "dimension {} out of range for tensor {}", dim, str());
  return shape_[d];
}

Tensor Tensor::view(Shape shape) const {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TS_CHECK(infer < 0, "view {}: only one dimension may be -1", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      TS_CHECK(shape[i] >= 0, "view {}: invalid dimension", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    TS_CHECK(known > 0 && numel() % known == 0, "cannot view {} as {}", str(), shape_str(shape));
    shape[infer] = numel() / known;
  }
  TS_CHECK(shape_numel(shape) == numel(), "cannot view {} as {}", str(), shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  TS_CHECK(ndim() >= 1 && start >= 0 && length >= 0 && start + length <= shape_[0],
           "narrow({}, {}) out of range for {}", start, length, str());
  Tensor t = *this;
  t.shape_[0] = length;
  t.offset_ += static_cast<size_t>(start) * (numel() / std::max<int64_t>(shape_[0], 1)) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::flat_slice(int64_t offset, int64_t count) const {
  TS_CHECK(offset >= 0 && count >= 0 && offset + count <= numel(),
           "flat_slice({}, {}) out of range for {}", offset, count, str());
  Tensor t = *this;
  t.shape_ = {count};
  t.offset_ += static_cast<size_t>(offset) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor out = empty(shape_, dtype_, device);
  copy_bytes(out, *this);
  return out;
}

void Tensor::record_stream(Stream stream) const { tessera::record_stream(storage_, stream); }

std::string Tensor::str() const {
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device_.str();
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, Shape shape, DType dtype) {
  TS_CHECK(sizeof(T) == dtype_size(dtype), "from_vector: element size {} does not match {}", sizeof(T),
           dtype_name(dtype));
  TS_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: {} values for shape {}",
           values.size(), shape_str(shape));
  Tensor t = empty(std::move(shape), dtype);
  if (!values.empty()) std::memcpy(t.data(), values.data(), t.nbytes());
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  TS_CHECK(sizeof(T) == dtype_size(dtype_), "to_vector: element size {} does not match {}", sizeof(T),
           dtype_name(dtype_));
  std::vector<T> out(static_cast<size_t>(numel()));
  if (!out.empty()) copy_bytes(Tensor::wrap(out.data(), shape_, dtype_, Device::cpu()), *this);
  return out;
}

#define TS_INSTANTIATE(T)                                                                    \
  template Tensor Tensor::from_vector<T>(const std::vector<T>&, Shape, DType);               \
  template std::vector<T> Tensor::to_vector<T>() const;
TS_INSTANTIATE(float)
TS_INSTANTIATE(uint16_t)
TS_INSTANTIATE(int64_t)
TS_INSTANTIATE(int32_t)
TS_INSTANTIATE(int8_t)
TS_INSTANTIATE(uint8_t)
#undef TS_INSTANTIATE

void copy_bytes(const Tensor& dst, const Tensor& src, bool async) {
  TS_CHECK(dst.nbytes() == src.nbytes(), "copy: {} and {} differ in size", dst.str(), src.str());
  if (dst.nbytes() == 0) return;
  if (dst.device().is_cpu() && src.device().is_cpu()) {
    std::memmove(dst.data(), src.data(), dst.nbytes());
    return;
  }
#if TESSERA_WITH_CUDA
  const int device = dst.is_cuda() ? dst.device().index : src.device().index;
  Stream stream = current_stream(device);
  TS_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), dst.nbytes(), cudaMemcpyDefault, stream));
  if (!async) synchronize_stream(stream);
#else
  (void)async;
  fail("copy between {} and {}: this build has no CUDA backend", dst.str(), src.str());
#endif
}

}  // namespace tessera
