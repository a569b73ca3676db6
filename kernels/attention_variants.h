// How many variants of the Hopper attention kernels TESSERA_ATTN_FWD / TESSERA_ATTN_BWD select
// from (v1 .. vN; kernels/cuda/attention_common.cuh says what each changes) and which one runs
// when they are unset, for the kernels, the tests that check every variant and the benchmark
// that times each.
#pragma once

namespace tessera {

constexpr int kAttentionForwardVariants = 7, kAttentionBackwardVariants = 12;
// The defaults, the fastest measured on the H200 (TFLOP/s at 4x2048, no documents / 700-token
// documents): forward v7 (session 9 call B: d64 285.8 / 134.8 against v3's 258.0 / 62.3; d128 408.6 /
// 190.8 against 393.6 / 101.8); backward v12 (session 10 call B: d64 239.2 / 110.6 against v6's
// 175.7 / 100.0 and SDPA's 188.9 / 97.4; d128 294.1 / 151.2 against 229.7 / 129.6 and SDPA's 203.7 /
// 109.6; S 4096 d64 292.0 against 201.0 and 231.4).
constexpr int kAttentionForwardDefault = 7, kAttentionBackwardDefault = 12;

}  // namespace tessera
