// A packed gemv variant as the environment picks it (kernels/cuda/gemv_packed.cu reads these at each
// call), for the CUDA tests that run every product under each variant. An empty field is unset.
#pragma once

#include <cstdlib>
#include <sstream>
#include <string>

namespace tessera::testing_util {

struct PackedGemvVariant {
  const char* gemv;              // TESSERA_PACKED_GEMV
  const char* split;             // TESSERA_PACKED_GEMV_SPLIT
  const char* depth = "";        // TESSERA_PACKED_STREAM_DEPTH: stream's ring of slices
  const char* stages = "";       // TESSERA_PACKED_BULK_STAGES: bulk's ring of chunks
  const char* chunk = "";        // TESSERA_PACKED_BULK_CHUNK: bulk's weights of a row a chunk
  const char* chains = "";       // TESSERA_PACKED_STREAM_CHAINS: stream's int4 mma chains a unit
  const char* tile_warps = "";   // TESSERA_PACKED_STREAM_TILE_WARPS: stream's warps a tile
  const char* symmetric = "";    // TESSERA_PACKED_STREAM_SYMMETRIC: stream's int4 zeros known to be 8
};

inline void set_packed_gemv_variant(const PackedGemvVariant& v) {
  setenv("TESSERA_PACKED_GEMV", v.gemv, 1);
  setenv("TESSERA_PACKED_GEMV_SPLIT", v.split, 1);
  setenv("TESSERA_PACKED_STREAM_DEPTH", v.depth, 1);
  setenv("TESSERA_PACKED_BULK_STAGES", v.stages, 1);
  setenv("TESSERA_PACKED_BULK_CHUNK", v.chunk, 1);
  setenv("TESSERA_PACKED_STREAM_CHAINS", v.chains, 1);
  setenv("TESSERA_PACKED_STREAM_TILE_WARPS", v.tile_warps, 1);
  setenv("TESSERA_PACKED_STREAM_SYMMETRIC", v.symmetric, 1);
}

inline void unset_packed_gemv_variant() {
  for (const char* name : {"TESSERA_PACKED_GEMV", "TESSERA_PACKED_GEMV_SPLIT", "TESSERA_PACKED_STREAM_DEPTH",
                           "TESSERA_PACKED_BULK_STAGES", "TESSERA_PACKED_BULK_CHUNK", "TESSERA_PACKED_STREAM_CHAINS",
                           "TESSERA_PACKED_STREAM_TILE_WARPS", "TESSERA_PACKED_STREAM_SYMMETRIC"})
    unsetenv(name);
}

// "variant stream split '' depth '6' ...": the trace of a failure under v.
inline std::string describe(const PackedGemvVariant& v) {
  std::ostringstream out;
  out << "variant " << v.gemv << " split '" << v.split << "' depth '" << v.depth << "' stages '" << v.stages
      << "' chunk '" << v.chunk << "' chains '" << v.chains << "' tile warps '" << v.tile_warps << "' symmetric '"
      << v.symmetric << "'";
  return out.str();
}

}  // namespace tessera::testing_util
