// CUDA AdamW and sum_squares against the CPU reference on fresh random inputs.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(OptimizerCuda, AdamWMatchesCpuOverSteps) {
  TS_REQUIRE_GPU();
  const Device gpu = Device::cuda(0);
  const int64_t n = 100003;
  const uint64_t seed = fresh_seed();
  Tensor p = random_tensor({n}, DType::F32, Device::cpu(), seed), gp = p.to(gpu);
  Tensor m = random_tensor({n}, DType::F32, Device::cpu(), seed + 1, 0.01f), gm = m.to(gpu);
  Tensor v = random_tensor({n}, DType::F32, Device::cpu(), seed + 2, 0.01f);
  ops::fill(v, 0.0f);  // second moments start at zero, as in a fresh optimizer
  Tensor gv = v.to(gpu);
  Tensor low = Tensor::empty({n}, DType::BF16), glow = Tensor::empty({n}, DType::BF16, gpu);
  for (int step = 1; step <= 3; ++step) {
    Tensor g = random_tensor({n}, DType::F32, Device::cpu(), seed + 10 + step);
    ops::AdamWStep s{.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.01f, .step = step,
                     .grad_scale = 0.25f};
    // The whole buffers (four per access, a three-element tail), then all but the first element
    // (no aligned bulk: one per access).
    for (int64_t at : {0, 1}) {
      auto part = [&](const Tensor& t) { return t.flat_slice(at, n - at); };
      ops::adamw(part(p), part(g), part(m), part(v), s, part(low));
      ops::adamw(part(gp), part(g.to(gpu)), part(gm), part(gv), s, part(glow));
    }
  }
  EXPECT_LT(relative_error(gp, p), 1e-6) << "seed " << seed;
  EXPECT_LT(relative_error(gm, m), 1e-6) << "seed " << seed;
  EXPECT_LT(relative_error(gv, v), 1e-6) << "seed " << seed;
  EXPECT_LT(relative_error(glow, low), 1e-2) << "seed " << seed;
}

TEST(OptimizerCuda, SumSquaresMatchesCpu) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  for (DType dtype : {DType::F32, DType::BF16}) {
    Tensor x = random_tensor({1 << 20}, dtype, Device::cpu(), seed);
    Tensor out = Tensor::from_vector<float>({0.0f}, {1}, DType::F32), gout = out.to(Device::cuda(0));
    ops::sum_squares(out, x);
    ops::sum_squares(gout, x.to(Device::cuda(0)));
    EXPECT_NEAR(host_f32(gout)[0], host_f32(out)[0], 1e-5 * host_f32(out)[0]) << dtype_name(dtype);
  }
}
