// The CUDA ops of the Linear and LoRA section against their CPU references on fresh random
// inputs (label gpu): column sums in every block layout (one column, a few, many; rows in one
// chunk, in several, and in more chunks than one pass adds up), dropout on packs and on
// unaligned views.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {
const Device gpu = Device::cuda(0);
}

class CudaColumnSum : public ::testing::TestWithParam<DType> {};

TEST_P(CudaColumnSum, MatchesCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  const std::pair<int64_t, int64_t> shapes[] = {{3000, 1}, {700, 5}, {100, 300}, {1500, 77}, {300000, 3}};
  for (const auto& [rows, cols] : shapes) {
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(::testing::Message() << rows << " x " << cols << (accumulate ? " +=" : " =") << " seed " << seed);
      const Tensor in = random_tensor({rows, cols}, dtype, Device::cpu(), seed);
      const Tensor start = random_tensor({cols}, DType::F32, Device::cpu(), seed + 1);
      Tensor cpu_out = start.clone(), gpu_out = start.to(gpu);
      ops::column_sum(cpu_out, in, accumulate);
      ops::column_sum(gpu_out, in.to(gpu), accumulate);
      EXPECT_LT(relative_error(gpu_out, cpu_out), 1e-5);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaColumnSum, ::testing::Values(DType::F32, DType::BF16));

class CudaDropout : public ::testing::TestWithParam<DType> {};

// The same counters give the same mask and the same rounding: equal bit for bit.
TEST_P(CudaDropout, EqualToCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  const int64_t n = 10003;
  for (int64_t at : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "view from element " << at << " seed " << seed);
    const Tensor x = random_tensor({n}, dtype, Device::cpu(), seed);
    const Tensor cpu_out = Tensor::empty({n}, dtype).flat_slice(at, n - at);
    const Tensor gpu_out = Tensor::empty({n}, dtype, gpu).flat_slice(at, n - at);
    ops::dropout(cpu_out, x.flat_slice(at, n - at), 0.1f, seed, 12345);
    ops::dropout(gpu_out, x.to(gpu).flat_slice(at, n - at), 0.1f, seed, 12345);
    EXPECT_EQ(host_f32(gpu_out), host_f32(cpu_out));
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaDropout, ::testing::Values(DType::F32, DType::BF16));
