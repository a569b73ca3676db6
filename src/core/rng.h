// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). Element i of a tensor
// filled with (seed, offset) uses counter offset + i alone, so the CPU and GPU produce the same
// numbers, in any order and with any number of threads. Usable from host and device code.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace tessera::rng {

struct Philox4 {
  uint32_t v[4];
};

TS_HOST_DEVICE inline uint32_t mulhi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

TS_HOST_DEVICE inline Philox4 philox(uint64_t seed, uint64_t counter) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = mulhi32(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = mulhi32(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits: exactly representable, identical on CPU and GPU.
TS_HOST_DEVICE inline float uniform(uint64_t seed, uint64_t counter) {
  return static_cast<float>(philox(seed, counter).v[0] >> 8) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller, computed in double so both backends round to the same float.
TS_HOST_DEVICE inline float normal(uint64_t seed, uint64_t counter) {
  const Philox4 r = philox(seed, counter);
  const double u1 = (static_cast<double>(r.v[0]) + 1.0) * (1.0 / 4294967296.0);  // (0, 1]
  const double u2 = static_cast<double>(r.v[1]) * (1.0 / 4294967296.0);
  return static_cast<float>(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

}  // namespace tessera::rng
