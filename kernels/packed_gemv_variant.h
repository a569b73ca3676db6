// A fused packed gemv variant as the environment picks it (kernels/cuda/gemv_packed.cu and the
// kernels it runs read these switches at each call), for the CUDA tests and bench/quant_gemv_bench
// that run the same products under each variant in one process. An empty field leaves the
// switch unset: its default.
#pragma once

#include <cstdlib>
#include <sstream>
#include <string>

namespace tessera {

struct PackedGemvVariant {
  const char* gemv;              // TESSERA_PACKED_GEMV
  const char* split;             // TESSERA_PACKED_GEMV_SPLIT
  const char* depth = "";        // TESSERA_PACKED_STREAM_DEPTH: stream's ring of slices
  const char* chains = "";       // TESSERA_PACKED_STREAM_CHAINS: stream's int4 mma chains a unit
  const char* tile_warps = "";   // TESSERA_PACKED_STREAM_TILE_WARPS: stream's warps a tile
  const char* symmetric = "";    // TESSERA_PACKED_STREAM_SYMMETRIC: stream's int4 zeros known to be 8
  const char* warps = "";        // TESSERA_PACKED_GEMV_WARPS: the tensor-core kernels' warps a block
  const char* segments = "";     // TESSERA_PACKED_ROWS_SEGMENTS: rows' pieces of each row's K
};

namespace packed_gemv_variant_detail {
inline constexpr const char* kNames[] = {
    "TESSERA_PACKED_GEMV",          "TESSERA_PACKED_GEMV_SPLIT",        "TESSERA_PACKED_STREAM_DEPTH",
    "TESSERA_PACKED_STREAM_CHAINS", "TESSERA_PACKED_STREAM_TILE_WARPS", "TESSERA_PACKED_STREAM_SYMMETRIC",
    "TESSERA_PACKED_GEMV_WARPS",    "TESSERA_PACKED_ROWS_SEGMENTS"};
}  // namespace packed_gemv_variant_detail

inline void set_packed_gemv_variant(const PackedGemvVariant& v) {
  const char* values[] = {v.gemv, v.split, v.depth, v.chains, v.tile_warps, v.symmetric, v.warps, v.segments};
  int i = 0;
  for (const char* name : packed_gemv_variant_detail::kNames) setenv(name, values[i++], 1);
}

// Every switch back to its default.
inline void unset_packed_gemv_variant() {
  for (const char* name : packed_gemv_variant_detail::kNames) unsetenv(name);
}

// "variant stream split '' depth '6' ...": the trace of a failure under v.
inline std::string describe(const PackedGemvVariant& v) {
  std::ostringstream out;
  out << "variant " << v.gemv << " split '" << v.split << "' depth '" << v.depth << "' chains '" << v.chains
      << "' tile warps '" << v.tile_warps << "' symmetric '"
      << v.symmetric << "' warps '" << v.warps << "' segments '" << v.segments << "'";
  return out.str();
}

}  // namespace tessera
