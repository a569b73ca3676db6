// How many variants of the Hopper attention kernels TESSERA_ATTN_FWD / TESSERA_ATTN_BWD select
// from (v1 .. vN; kernels/cuda/attention_common.cuh says what each changes) and which one runs
// when they are unset, for the kernels, the tests that check every variant and the benchmark
// that times each.
#pragma once

namespace tessera {

constexpr int kAttentionForwardVariants = 7, kAttentionBackwardVariants = 8;
// The defaults, the fastest measured on the H200 (session 8, 19:40 call): forward v3 (v1-v3 measured),
// backward v5 (v1-v5 measured; bwd TFLOP/s at 4x2048, d64 GQA 32/8: v1 150.0, v3 180.8, v5 184.5;
// d128 16/8: v1 198.5, v3 238.9, v5 260.7).
constexpr int kAttentionForwardDefault = 3, kAttentionBackwardDefault = 5;

}  // namespace tessera
