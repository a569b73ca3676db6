// CPU attention against a naive double-precision version, and its backward against central
// finite differences of that version, on tiny GQA shapes with and without packed segments.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

struct Case {
  int64_t b, s, hq, hkv, d;
  bool segments;
};

// Readable test names (the default prints the struct's bytes, padding included).
void PrintTo(const Case& c, std::ostream* os) {
  *os << "b" << c.b << "_s" << c.s << "_hq" << c.hq << "_hkv" << c.hkv << "_d" << c.d << (c.segments ? "_segments" : "");
}

// Nondecreasing ids with random document boundaries, as packed sequences have.
Tensor random_segments(int64_t b, int64_t s, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> ids(b * s);
  for (int64_t r = 0; r < b; ++r) {
    int32_t id = 0;
    for (int64_t i = 0; i < s; ++i) ids[r * s + i] = id += (i > 0 && gen() % 3 == 0);
  }
  return Tensor::from_vector(ids, {b, s}, DType::I32);
}

// Naive attention in double: out [B, S, Hq, D] and lse [B, Hq, S].
struct Reference {
  const Case& c;
  const std::vector<int32_t>& seg;  // empty: plain causal
  double scale;

  bool sees(int64_t b, int64_t i, int64_t j) const { return j <= i && (seg.empty() || seg[b * c.s + j] == seg[b * c.s + i]); }

  void forward(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
               std::vector<double>& out, std::vector<double>& lse) const {
    out.assign(c.b * c.s * c.hq * c.d, 0.0);
    lse.assign(c.b * c.hq * c.s, 0.0);
    for (int64_t b = 0; b < c.b; ++b)
      for (int64_t h = 0; h < c.hq; ++h) {
        const int64_t kvh = h / (c.hq / c.hkv);
        for (int64_t i = 0; i < c.s; ++i) {
          std::vector<double> w(c.s, 0.0);
          double max = -std::numeric_limits<double>::infinity(), sum = 0;
          for (int64_t j = 0; j < c.s; ++j) {
            if (!sees(b, i, j)) continue;
            double dot = 0;
            for (int64_t d = 0; d < c.d; ++d)
              dot += q[((b * c.s + i) * c.hq + h) * c.d + d] * k[((b * c.s + j) * c.hkv + kvh) * c.d + d];
            w[j] = scale * dot;
            max = std::max(max, w[j]);
          }
          for (int64_t j = 0; j < c.s; ++j) sum += sees(b, i, j) ? std::exp(w[j] - max) : 0.0;
          for (int64_t j = 0; j < c.s; ++j) {
            if (!sees(b, i, j)) continue;
            const double p = std::exp(w[j] - max) / sum;
            for (int64_t d = 0; d < c.d; ++d)
              out[((b * c.s + i) * c.hq + h) * c.d + d] += p * v[((b * c.s + j) * c.hkv + kvh) * c.d + d];
          }
          lse[(b * c.hq + h) * c.s + i] = max + std::log(sum);
        }
      }
  }

  // sum(out * dout): its gradient is what attention_backward returns.
  double loss(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
              const std::vector<double>& dout) const {
    std::vector<double> out, lse;
    forward(q, k, v, out, lse);
    double total = 0;
    for (size_t i = 0; i < out.size(); ++i) total += out[i] * dout[i];
    return total;
  }
};

std::vector<double> as_double(const Tensor& t) {
  auto f = host_f32(t);
  return {f.begin(), f.end()};
}

// Worst |got - want| over max(|want|, floor) (so tiny entries do not dominate).
double scaled_error(const std::vector<float>& got, const std::vector<double>& want, double floor = 1e-12) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0, norm = floor;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]));
    norm = std::max(norm, std::abs(want[i]));
  }
  return worst / norm;
}

class CpuAttention : public ::testing::TestWithParam<Case> {};

TEST_P(CpuAttention, ForwardMatchesNaiveDouble) {
  const Case c = GetParam();
  const uint64_t seed = fresh_seed();
  Tensor q = random_tensor({c.b, c.s, c.hq, c.d}, DType::F32, Device::cpu(), seed);
  Tensor k = random_tensor({c.b, c.s, c.hkv, c.d}, DType::F32, Device::cpu(), seed + 1);
  Tensor v = random_tensor({c.b, c.s, c.hkv, c.d}, DType::F32, Device::cpu(), seed + 2);
  Tensor seg = c.segments ? random_segments(c.b, c.s, seed + 3) : Tensor();
  const std::vector<int32_t> seg_ids = c.segments ? seg.to_vector<int32_t>() : std::vector<int32_t>();
  const float scale = 1.0f / std::sqrt(float(c.d));
  Tensor out = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({c.b, c.hq, c.s}, DType::F32);
  ops::attention_forward(out, lse, q, k, v, scale, seg);

  Reference ref{c, seg_ids, scale};
  std::vector<double> want_out, want_lse;
  ref.forward(as_double(q), as_double(k), as_double(v), want_out, want_lse);
  EXPECT_LT(scaled_error(host_f32(out), want_out), 1e-5) << "seed " << seed;
  // lse is a log: its absolute error is what the softmax sees, and one near-zero lse (a single
  // key whose dot product cancels) would make a relative bound fail on float rounding alone.
  EXPECT_LT(scaled_error(host_f32(lse), want_lse, 1.0), 1e-5) << "seed " << seed;
}

TEST_P(CpuAttention, BackwardMatchesFiniteDifferences) {
  const Case c = GetParam();
  const uint64_t seed = fresh_seed();
  Tensor q = random_tensor({c.b, c.s, c.hq, c.d}, DType::F32, Device::cpu(), seed);
  Tensor k = random_tensor({c.b, c.s, c.hkv, c.d}, DType::F32, Device::cpu(), seed + 1);
  Tensor v = random_tensor({c.b, c.s, c.hkv, c.d}, DType::F32, Device::cpu(), seed + 2);
  Tensor dout = random_tensor(q.shape(), DType::F32, Device::cpu(), seed + 3);
  Tensor seg = c.segments ? random_segments(c.b, c.s, seed + 4) : Tensor();
  const std::vector<int32_t> seg_ids = c.segments ? seg.to_vector<int32_t>() : std::vector<int32_t>();
  const float scale = 1.0f / std::sqrt(float(c.d));
  Tensor out = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({c.b, c.hq, c.s}, DType::F32);
  ops::attention_forward(out, lse, q, k, v, scale, seg);
  Tensor dq = Tensor::empty(q.shape(), DType::F32), dk = Tensor::empty(k.shape(), DType::F32),
         dv = Tensor::empty(v.shape(), DType::F32);
  ops::fill(dq, 7.0f);  // written, not accumulated
  ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, scale, seg);

  const Reference ref{c, seg_ids, scale};
  std::vector<double> x[3] = {as_double(q), as_double(k), as_double(v)};
  const std::vector<double> g = as_double(dout);
  const Tensor* grads[3] = {&dq, &dk, &dv};
  const double eps = 1e-5;
  for (int which = 0; which < 3; ++which) {
    std::vector<double> numeric(x[which].size());
    for (size_t i = 0; i < numeric.size(); ++i) {
      const double saved = x[which][i];
      x[which][i] = saved + eps;
      const double up = ref.loss(x[0], x[1], x[2], g);
      x[which][i] = saved - eps;
      const double down = ref.loss(x[0], x[1], x[2], g);
      x[which][i] = saved;
      numeric[i] = (up - down) / (2 * eps);
    }
    EXPECT_LT(scaled_error(host_f32(*grads[which]), numeric), 1e-4) << "d" << "qkv"[which] << " seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(TinyShapes, CpuAttention,
                         ::testing::Values(Case{1, 1, 1, 1, 4, false}, Case{1, 5, 2, 2, 4, false},
                                           Case{2, 7, 4, 2, 8, false}, Case{2, 9, 4, 2, 8, true},
                                           Case{1, 9, 4, 1, 6, true}, Case{2, 8, 4, 4, 4, true}));

TEST(CpuAttentionChecks, RejectsMismatchedShapes) {
  Tensor q = Tensor::empty({1, 4, 3, 8}, DType::F32), k = Tensor::empty({1, 4, 2, 8}, DType::F32);
  Tensor out = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({1, 3, 4}, DType::F32);
  EXPECT_THROW(ops::attention_forward(out, lse, q, k, k, 0.5f), Error);  // 3 heads over 2 kv heads
  Tensor q4 = Tensor::empty({1, 4, 4, 8}, DType::F32), out4 = Tensor::empty(q4.shape(), DType::F32);
  EXPECT_THROW(ops::attention_forward(out4, lse, q4, k, k, 0.5f), Error);  // lse has 3 heads
  Tensor seg = Tensor::empty({1, 4}, DType::F32);
  Tensor lse4 = Tensor::empty({1, 4, 4}, DType::F32);
  EXPECT_THROW(ops::attention_forward(out4, lse4, q4, k, k, 0.5f, seg), Error);  // f32 segment ids
}

// Document bounds by hand: runs of equal ids, 1-token documents at both ends, and a row whose ids
// decrease (its documents need not be runs: -1 throughout).
TEST(CpuDocumentBounds, FirstAndLastRowOfEachRun) {
  const Tensor seg = Tensor::from_vector<int32_t>({4, 5, 5, 5, 6, 6, 9,  //
                                                   3, 3, 1, 1, 7, 7, 7,  //
                                                   2, 2, 2, 2, 2, 2, 2},
                                                  {3, 7}, DType::I32);
  Tensor bounds = Tensor::empty({2, 3, 7}, DType::I32);
  ops::document_bounds(bounds, seg);
  const std::vector<int32_t> want = {0,  1,  1,  1,  4,  4,  6,   // first rows
                                     -1, -1, -1, -1, -1, -1, -1,  //
                                     0,  0,  0,  0,  0,  0,  0,   //
                                     0,  3,  3,  3,  5,  5,  6,   // last rows
                                     -1, -1, -1, -1, -1, -1, -1,  //
                                     6,  6,  6,  6,  6,  6,  6};
  EXPECT_EQ(bounds.to_vector<int32_t>(), want);
  EXPECT_THROW(ops::document_bounds(Tensor::empty({2, 3, 6}, DType::I32), seg), Error);  // shape
  EXPECT_THROW(ops::document_bounds(Tensor::empty({2, 3, 7}, DType::F32), seg), Error);  // dtype
  EXPECT_THROW(ops::document_bounds(bounds, Tensor::empty({3, 7}, DType::F32)), Error);  // ids not i32
}

}  // namespace
