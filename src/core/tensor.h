// Tensor: a shape, a dtype and a device over contiguous row-major storage.
// Views (view, narrow, flat_slice) share storage with the tensor they came from; there are no
// strides, so every tensor is contiguous and ops can treat it as a flat array.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace tessera {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised memory (CUDA memory belongs to the device's current stream).
  static Tensor empty(Shape shape, DType dtype, Device device = Device::cpu());
  // Page-locked host memory, for asynchronous copies to and from the GPU.
  static Tensor empty_pinned(Shape shape, DType dtype);
  // A tensor over memory owned elsewhere (e.g. a memory-mapped file); `owner` keeps it alive.
  static Tensor wrap(void* data, Shape shape, DType dtype, Device device,
                     std::shared_ptr<void> owner = nullptr);
  // Host tensor holding a copy of `values` (T matches dtype: float for f32, uint16_t bits for
  // bf16/f16, the integer type otherwise).
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, Shape shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }

  void* data() const { return static_cast<char*>(storage_.get()) + offset_; }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data()); }

  // Same storage, another shape with the same element count; one dimension may be -1.
  Tensor view(Shape shape) const;
  // Rows [start, start + length) of dimension 0.
  Tensor narrow(int64_t start, int64_t length) const;
  // Elements [offset, offset + count) of the flattened tensor, as a 1-D tensor.
  Tensor flat_slice(int64_t offset, int64_t count) const;

  // A copy on `device` with the same dtype; waits until the copy is done.
  Tensor to(Device device) const;
  Tensor clone() const { return to(device_); }
  // Copies the elements to host memory as T (see from_vector).
  template <typename T>
  std::vector<T> to_vector() const;

  // Tells the CUDA allocator that this tensor's memory is used on `stream` as well.
  void record_stream(Stream stream) const;
  const std::shared_ptr<void>& storage() const { return storage_; }

  std::string str() const;  // "bf16[2, 3] cuda:0"

 private:
  std::shared_ptr<void> storage_;
  size_t offset_ = 0;  // bytes from the storage's start
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
};

// Copies bytes between tensors of equal byte size on any devices. With `async`, a CUDA copy is
// queued on the current stream of the CUDA side and not waited for.
void copy_bytes(const Tensor& dst, const Tensor& src, bool async = false);

}  // namespace tessera
