#include "core/stream.h"

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#if TESSERA_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace tessera {

#if TESSERA_WITH_CUDA

namespace {
constexpr int kMaxDevices = 64;

Stream& default_stream_slot(int device) {
  static std::array<Stream, kMaxDevices> streams{};
  return streams.at(device);
}

// Per-thread override of the current stream; nullptr means "the device's default stream".
thread_local std::array<Stream, kMaxDevices> current_override{};

// TESSERA_COMPUTE_PRIORITY=high: the default streams get the highest priority, so that the block
// scheduler serves their kernels before those of low-priority side streams (zero.overlap_step's
// AdamW), which then run only where compute leaves SMs free.
bool compute_priority_high() {
  static const bool high = [] {
    const char* e = std::getenv("TESSERA_COMPUTE_PRIORITY");
    return e && std::strcmp(e, "high") == 0;
  }();
  return high;
}
}  // namespace

void set_device(int device) { TS_CUDA_CHECK(cudaSetDevice(device)); }

Stream current_stream(int device) {
  if (Stream s = current_override.at(device)) return s;
  static std::mutex mu;
  std::lock_guard lock(mu);
  Stream& slot = default_stream_slot(device);
  if (!slot) slot = create_stream(device, compute_priority_high());
  return slot;
}

void set_current_stream(int device, Stream stream) { current_override.at(device) = stream; }

Stream create_stream(int device, bool high_priority) {
  int previous = 0;
  TS_CUDA_CHECK(cudaGetDevice(&previous));
  TS_CUDA_CHECK(cudaSetDevice(device));
  int least = 0, greatest = 0;
  TS_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  cudaStream_t stream;
  TS_CUDA_CHECK(cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking,
                                             high_priority ? greatest : least));
  TS_CUDA_CHECK(cudaSetDevice(previous));
  return stream;
}

void destroy_stream(Stream stream) {
  if (stream) cudaStreamDestroy(stream);
}

void synchronize_stream(Stream stream) { TS_CUDA_CHECK(cudaStreamSynchronize(stream)); }

void synchronize_device(Device device) {
  if (device.is_cuda()) synchronize_stream(current_stream(device.index));
}

Event::~Event() {
  if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
    handle_ = other.handle_;
    timing_ = other.timing_;
    other.handle_ = nullptr;
  }
  return *this;
}

void Event::record(Stream stream) {
  if (!handle_) {
    cudaEvent_t event;
    TS_CUDA_CHECK(cudaEventCreateWithFlags(&event, timing_ ? cudaEventDefault : cudaEventDisableTiming));
    handle_ = event;
  }
  TS_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(handle_), stream));
}

void Event::wait_on(Stream stream) const {
  if (handle_) TS_CUDA_CHECK(cudaStreamWaitEvent(stream, static_cast<cudaEvent_t>(handle_), 0));
}

void Event::synchronize() const {
  if (handle_) TS_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(handle_)));
}

bool Event::ready() const {
  if (!handle_) return true;
  cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(handle_));
  if (status == cudaErrorNotReady) return false;
  TS_CUDA_CHECK(status);
  return true;
}

void hold_stream(Stream stream, double ms) {
  static_assert(sizeof(double) <= sizeof(void*), "the hold's length travels in the callback's pointer");
  void* arg = nullptr;
  std::memcpy(&arg, &ms, sizeof ms);
  TS_CUDA_CHECK(cudaLaunchHostFunc(
      stream,
      [](void* p) {
        double wait = 0;
        std::memcpy(&wait, &p, sizeof wait);
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(wait));
      },
      arg));
}

float elapsed_ms(const Event& start, const Event& end) {
  TS_CHECK(start.handle_ && end.handle_ && start.timing_ && end.timing_,
           "elapsed_ms: both events must be timing events, recorded");
  float ms = 0;
  TS_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.handle_), static_cast<cudaEvent_t>(end.handle_)));
  return ms;
}

#else  // CPU-only build: there are no streams and nothing to wait for.

void set_device(int) {}
Stream current_stream(int) { return nullptr; }
void set_current_stream(int, Stream) {}
Stream create_stream(int, bool) { return nullptr; }
void destroy_stream(Stream) {}
void synchronize_stream(Stream) {}
void synchronize_device(Device) {}
void hold_stream(Stream, double) {}
Event::~Event() = default;
Event& Event::operator=(Event&&) noexcept { return *this; }
void Event::record(Stream) {}
void Event::wait_on(Stream) const {}
void Event::synchronize() const {}
bool Event::ready() const { return true; }
float elapsed_ms(const Event&, const Event&) { return 0.0f; }

#endif

}  // namespace tessera
