// How the CUDA small-M gemv (kernels/cuda/gemv.cu) schedules its weight rows, process-wide: read
// at first use from TESSERA_GEMV (rows, persistent, split2 or split4; split4 unless set: session 10
// call B, 1B batch 1 892 tok/s against rows' 808, 8B 186.5 against 164.8), then
// whatever set_gemv_form stores (benchmarks and tests).
// - Rows: one warp per weight row, 4 warps a block; the hardware deals the blocks out in waves.
// - Persistent: only the blocks that fit at once, each warp walking its share of the rows with
//   the next row's loads issued before the current row's arithmetic, the norm prologue run once
//   per block. The same bits as Rows.
// - Split2, Split4: Persistent, and where a weight has too few rows for the resident warps to
//   take 4 each (the down projections, q/k/v) each row's K in 2 or 4 segments taken by the
//   warps of one block, their sums added in segment order: the same bits every run, not Rows'.
//   The SwiGLU form (K short, many rows) runs as Persistent.
// The blocks a persistent form keeps on each SM: all that fit, or at most gemv_blocks_per_sm()
// (TESSERA_GEMV_BLOCKS_PER_SM 1-8, auto or unset: all), leaving room for the next kernel's blocks
// to start streaming their weights before this one ends (programmatic dependent launch).
#pragma once

namespace tessera::ops {

enum class GemvForm { Rows, Persistent, Split2, Split4 };

GemvForm gemv_form();
void set_gemv_form(GemvForm form);
const char* gemv_form_name(GemvForm form);

// 0: all that fit.
int gemv_blocks_per_sm();
void set_gemv_blocks_per_sm(int blocks);

}  // namespace tessera::ops
