// Where a tensor lives: host memory or one CUDA device.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

struct CUstream_st;  // the CUDA runtime's stream type, so headers need not include CUDA

namespace tessera {

using Stream = CUstream_st*;  // same type as cudaStream_t; nullptr on the CPU

struct Device {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return {Kind::CPU, 0}; }
  static Device cuda(int index) { return {Kind::CUDA, index}; }
  static Device parse(std::string_view text);  // "cpu", "cuda", "cuda:1"

  bool is_cpu() const { return kind == Kind::CPU; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

// Number of usable CUDA devices (0 in CPU-only builds or where no driver/GPU is present).
int cuda_device_count();

// The GPU's marketing name ("NVIDIA H100 80GB HBM3"), or "cpu".
std::string device_name(Device device);

// Why there is no GPU, for tests that skip ("" when one is present).
std::string cuda_unavailable_reason();

}  // namespace tessera
