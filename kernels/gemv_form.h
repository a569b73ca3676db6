// How the CUDA small-M gemv (kernels/cuda/gemv.cu) schedules its weight rows, process-wide: read
// at first use from TESSERA_GEMV (rows or persistent; rows unless set), then whatever
// set_gemv_form stores (benchmarks and tests). Both forms give the same bits.
// - Rows: one warp per weight row, 4 warps a block; the hardware deals the blocks out in waves.
// - Persistent: only the blocks that fit at once, each warp walking its share of the rows with
//   the next row's loads issued before the current row's arithmetic, the norm prologue run once
//   per block.
#pragma once

namespace tessera::ops {

enum class GemvForm { Rows, Persistent };

GemvForm gemv_form();
void set_gemv_form(GemvForm form);
const char* gemv_form_name(GemvForm form);

}  // namespace tessera::ops
