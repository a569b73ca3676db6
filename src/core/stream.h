// CUDA streams as seen by the rest of Tessera. Ops run on the calling thread's current stream
// of the tensor's device; by default that is one non-blocking stream per device, made on first
// use (never the legacy default stream, which would serialise compute with communication).
// In CPU-only builds every function here is a no-op and streams are nullptr.
#pragma once

#include "core/device.h"

namespace tessera {

Stream current_stream(int device);
void set_current_stream(int device, Stream stream);
Stream create_stream(int device, bool high_priority = false);  // caller owns it
void destroy_stream(Stream stream);
void synchronize_stream(Stream stream);
void synchronize_device(Device device);  // waits for the current stream; no-op on CPU
// The stream waits `ms` milliseconds (host time) before what is queued after: profiling gives the
// host that head start so the device then runs the queued work back to back. No-op on CPU.
void hold_stream(Stream stream, double ms);
void set_device(int device);

// Makes `stream` current for `device` in this scope.
class StreamGuard {
 public:
  StreamGuard(int device, Stream stream) : device_(device), previous_(current_stream(device)) {
    set_current_stream(device, stream);
  }
  ~StreamGuard() { set_current_stream(device_, previous_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  Stream previous_;
};

// An event recorded on one stream that another stream (or the host) can wait for.
class Event {
 public:
  Event() = default;
  explicit Event(bool timing) : timing_(timing) {}  // timing: elapsed_ms() can measure between two
  ~Event();
  Event(Event&& other) noexcept : handle_(other.handle_), timing_(other.timing_) { other.handle_ = nullptr; }
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(Stream stream);
  void wait_on(Stream stream) const;  // stream waits for this event (no host block)
  void synchronize() const;           // host waits
  bool ready() const;

 private:
  friend float elapsed_ms(const Event& start, const Event& end);
  void* handle_ = nullptr;  // cudaEvent_t
  bool timing_ = false;
};

// Device milliseconds between two recorded timing events (the end one complete); 0 on the CPU.
float elapsed_ms(const Event& start, const Event& end);

}  // namespace tessera
