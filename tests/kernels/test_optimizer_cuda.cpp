// CUDA AdamW and sum_squares against the CPU reference on fresh random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

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

namespace {

// Spans of random lengths (some empty) with random decay flags tiling [0, tiled).
std::vector<ops::AdamWSpan> random_spans(int count, int64_t tiled, uint64_t seed) {
  std::vector<float> cuts = host_f32(random_tensor({count}, DType::F32, Device::cpu(), seed));
  std::vector<int64_t> ends;
  for (float c : cuts) ends.push_back(static_cast<int64_t>(std::abs(c) * 1e6) % (tiled + 1));
  std::sort(ends.begin(), ends.end());
  ends.back() = tiled;
  std::vector<ops::AdamWSpan> spans;
  int64_t at = 0;
  for (size_t k = 0; k < ends.size(); ++k) {
    spans.push_back({at, ends[k], cuts[k] > 0});
    at = ends[k];
  }
  return spans;
}

}  // namespace

// adamw_spans (one launch per 32 spans) against the CPU reference: one span, a layer's four, 70
// (three launches), unaligned buffers (one element per access), tails of padding, small buffers,
// and working copies in bf16, f32 or none; the second step also zeroes the gradient (zero_grad).
TEST(OptimizerCuda, AdamWSpansMatchesCpu) {
  TS_REQUIRE_GPU();
  const Device gpu = Device::cuda(0);
  const uint64_t seed = fresh_seed();
  struct Case {
    int64_t n, tiled;
    int spans;
    int64_t offset;  // into a larger buffer: 1 breaks the 16-byte packs
    DType low;
    bool has_low;
  };
  const std::vector<Case> cases{{100003, 100003, 1, 0, DType::BF16, true}, {262144, 262000, 4, 0, DType::BF16, true},
                                {300007, 299990, 70, 0, DType::BF16, true}, {50001, 49000, 9, 1, DType::BF16, true},
                                {70000, 70000, 33, 1, DType::F32, true},    {40000, 39999, 5, 0, DType::F32, false},
                                {5, 3, 2, 0, DType::BF16, true},           {1, 0, 0, 0, DType::BF16, true}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "n " << c.n << " spans " << c.spans << " offset " << c.offset << " seed " << seed);
    const std::vector<ops::AdamWSpan> spans =
        c.spans > 0 ? random_spans(c.spans, c.tiled, seed + c.n) : std::vector<ops::AdamWSpan>{};
    auto make = [&](uint64_t k, float std) {
      return random_tensor({c.n + c.offset}, DType::F32, Device::cpu(), seed + k, std).flat_slice(c.offset, c.n);
    };
    Tensor p = make(1, 1.0f), m = make(2, 0.01f), v = make(3, 0.01f);
    ops::fill(v, 1e-4f);
    Tensor low = c.has_low ? random_tensor({c.n + c.offset}, c.low, Device::cpu(), seed + 4).flat_slice(c.offset, c.n)
                           : Tensor();
    // The same values on the device, at the same offset into a larger buffer.
    auto on_gpu = [&](const Tensor& t) {
      if (!t.defined()) return Tensor();
      Tensor part = Tensor::empty({c.n + c.offset}, t.dtype(), gpu).flat_slice(c.offset, c.n);
      copy_bytes(part, t);
      return part;
    };
    Tensor gp = on_gpu(p), gm = on_gpu(m), gv = on_gpu(v), glow = on_gpu(low);
    for (int step = 1; step <= 2; ++step) {
      const Tensor g = make(10 + step, 1.0f), gg = on_gpu(g);
      const ops::AdamWStep s{.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                             .step = step, .grad_scale = 0.5f, .zero_grad = step == 2};
      ops::adamw_spans(p, g, m, v, s, low, spans);
      ops::adamw_spans(gp, gg, gm, gv, s, glow, spans);
      if (step == 2) EXPECT_EQ(squared_norm(gg), 0.0) << "the gradient is zeroed, padding included";
      if (step == 1) EXPECT_EQ(host_f32(gg), host_f32(g)) << "the gradient is left as it is";
    }
    EXPECT_LT(relative_error(gp, p), 1e-6);
    EXPECT_LT(relative_error(gm, m), 1e-6);
    EXPECT_LT(relative_error(gv, v), 1e-6);
    if (!c.has_low) continue;
    EXPECT_LT(relative_error(glow, low), 1e-3);
    const std::vector<float> got = host_f32(glow);
    for (int64_t i = c.tiled; i < c.n; ++i) ASSERT_EQ(got[i], 0.0f) << "padding element " << i;
    if (c.tiled > 0) EXPECT_GT(squared_norm(low), 0.0);
  }
}

