#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace tessera {

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.starts_with("cuda:")) {
    int index = -1;
    auto digits = text.substr(5);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && index >= 0) return cuda(index);
  }
  fail("invalid device '{}' (expected cpu, cuda or cuda:N)", text);
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

}  // namespace tessera

#if TESSERA_WITH_CUDA
#include <cuda_runtime.h>

namespace tessera {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string cuda_unavailable_reason() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device: ") + cudaGetErrorString(err);
  }
  return count == 0 ? "no CUDA device present" : "";
}

std::string device_name(Device device) {
  if (device.is_cpu()) return "cpu";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device.index) != cudaSuccess) return "unknown GPU";
  return prop.name;
}

}  // namespace tessera
#else
namespace tessera {
int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() { return "built without CUDA (-DTESSERA_CUDA=OFF)"; }
std::string device_name(Device) { return "cpu"; }
}  // namespace tessera
#endif

namespace tessera {

void fail_call(const char* library, const char* call, const char* file, int line, const char* what) {
  fail("{} error in {} ({}:{}): {}", library, call, file, line, what);
}

}  // namespace tessera
