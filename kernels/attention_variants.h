// How many variants of the Hopper attention kernels TESSERA_ATTN_FWD / TESSERA_ATTN_BWD select
// from (v1 .. vN; kernels/cuda/attention_common.cuh says what each changes) and which one runs
// when they are unset, for the kernels, the tests that check every variant and the benchmark
// that times each.
#pragma once

namespace tessera {

constexpr int kAttentionForwardVariants = 7, kAttentionBackwardVariants = 12;
// The defaults, the fastest measured on the H200 (session 9 call B, TFLOP/s at 4x2048, no documents /
// 700-token documents): forward v7 (d64 285.8 / 134.8 against v3's 258.0 / 62.3; d128 408.6 / 190.8
// against 393.6 / 101.8), backward v6 (d64 176.4 / 99.7 against v5's 174.7 / 94.3; d128 230.1 / 129.9
// against 230.5 / 125.7; v7 is 134.4 at d128 with documents but 148.8 at d64 without).
constexpr int kAttentionForwardDefault = 7, kAttentionBackwardDefault = 6;

}  // namespace tessera
