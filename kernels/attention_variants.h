// How many variants of the Hopper attention kernels TESSERA_ATTN_FWD / TESSERA_ATTN_BWD select
// from (v1 .. vN; kernels/cuda/attention_common.cuh says what each changes), for the kernels, the
// tests that check every variant and the benchmark that times each.
#pragma once

namespace tessera {

constexpr int kAttentionForwardVariants = 3, kAttentionBackwardVariants = 5;

}  // namespace tessera
