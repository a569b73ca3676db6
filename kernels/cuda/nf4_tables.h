// The NF4 tables (kernels/quant_math.h) in a device's memory, copied there once per device and
// kept to the end of the run (kernels may read them until exit).
#pragma once

#include "kernels/quant_math.h"

namespace tessera::cuda {

const quant_math::Nf4Tables* device_nf4_tables(int device);

}  // namespace tessera::cuda
