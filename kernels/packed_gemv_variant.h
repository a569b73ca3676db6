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
  const char* split = "";        // TESSERA_PACKED_GEMV_SPLIT: K over a cluster of blocks
  const char* depth = "";        // TESSERA_PACKED_STREAM_DEPTH: stream's ring of slices
  const char* chains = "";       // TESSERA_PACKED_STREAM_CHAINS: stream's int4 mma chains a unit
  const char* tile_warps = "";   // TESSERA_PACKED_STREAM_TILE_WARPS: stream's warps a tile
  const char* symmetric = "";    // TESSERA_PACKED_STREAM_SYMMETRIC: stream's int4 zeros known to be 8
  const char* warps = "";        // TESSERA_PACKED_GEMV_WARPS: the tensor-core kernels' warps a block
  const char* segments = "";     // TESSERA_PACKED_ROWS_SEGMENTS: rows' pieces of each row's K
};

namespace packed_gemv_variant_detail {
// Each switch and the field that holds its value.
struct Switch {
  const char* name;
  const char* PackedGemvVariant::*field;
};
inline constexpr Switch kSwitches[] = {{"TESSERA_PACKED_GEMV", &PackedGemvVariant::gemv},
                                       {"TESSERA_PACKED_GEMV_SPLIT", &PackedGemvVariant::split},
                                       {"TESSERA_PACKED_STREAM_DEPTH", &PackedGemvVariant::depth},
                                       {"TESSERA_PACKED_STREAM_CHAINS", &PackedGemvVariant::chains},
                                       {"TESSERA_PACKED_STREAM_TILE_WARPS", &PackedGemvVariant::tile_warps},
                                       {"TESSERA_PACKED_STREAM_SYMMETRIC", &PackedGemvVariant::symmetric},
                                       {"TESSERA_PACKED_GEMV_WARPS", &PackedGemvVariant::warps},
                                       {"TESSERA_PACKED_ROWS_SEGMENTS", &PackedGemvVariant::segments}};
}  // namespace packed_gemv_variant_detail

inline void set_packed_gemv_variant(const PackedGemvVariant& v) {
  for (const auto& [name, field] : packed_gemv_variant_detail::kSwitches) setenv(name, v.*field, 1);
}

// Every switch back to its default.
inline void unset_packed_gemv_variant() {
  for (const auto& s : packed_gemv_variant_detail::kSwitches) unsetenv(s.name);
}

// "TESSERA_PACKED_GEMV=stream TESSERA_PACKED_STREAM_DEPTH=6": the switches v sets, for the trace
// of a failure under it.
inline std::string describe(const PackedGemvVariant& v) {
  std::ostringstream out;
  for (const auto& [name, field] : packed_gemv_variant_detail::kSwitches)
    if (*(v.*field)) out << (out.tellp() > 0 ? " " : "") << name << "=" << v.*field;
  return out.str();
}

}  // namespace tessera
