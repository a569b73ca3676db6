// CPU reference attention: the textbook softmax(scale * q k^T + mask) v, row by row, in fp32.
// Backward recomputes the probabilities from lse: P = exp(scale * q k^T - lse), then
// dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)), dQ = scale dS K, dK = scale dS^T Q.
// document_bounds: each row's document (run of equal segment ids), scanned both ways.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

namespace {

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Row i of head h in a [B, S, H, D] tensor.
struct Rows {
  const AttentionShape& s;
  int64_t heads;
  int64_t offset(int64_t b, int64_t i, int64_t h) const { return ((b * s.s + i) * heads + h) * s.d; }
};

// Whether query i of batch b sees key j.
struct Mask {
  const int32_t* segments;  // null: plain causal
  int64_t seq;
  bool operator()(int64_t b, int64_t i, int64_t j) const {
    return j <= i && (!segments || segments[b * seq + j] == segments[b * seq + i]);
  }
};

}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       float softmax_scale, const Tensor& segment_ids, const AttentionShape& s) {
  F32In qf(q), kf(k), vf(v);
  F32Out of(out, false);
  float* lse_out = lse.data_as<float>();
  const Rows qrows{s, s.hq}, kvrows{s, s.hkv};
  const Mask mask{segment_ids.defined() ? segment_ids.data_as<int32_t>() : nullptr, s.s};
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t h = 0; h < s.hq; ++h) {
      const int64_t kvh = h / s.group();
      std::vector<float> scores(s.s);
      for (int64_t i = 0; i < s.s; ++i) {
        const float* qi = qf.data() + qrows.offset(b, i, h);
        float max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
          scores[j] = mask(b, i, j) ? softmax_scale * dot(qi, kf.data() + kvrows.offset(b, j, kvh), s.d)
                                    : -std::numeric_limits<float>::infinity();
          max = std::max(max, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j <= i; ++j) sum += scores[j] = std::exp(scores[j] - max);
        float* oi = of.data() + qrows.offset(b, i, h);
        for (int64_t d = 0; d < s.d; ++d) oi[d] = 0.0f;
        for (int64_t j = 0; j <= i; ++j) {
          const float* vj = vf.data() + kvrows.offset(b, j, kvh);
          for (int64_t d = 0; d < s.d; ++d) oi[d] += scores[j] / sum * vj[d];
        }
        lse_out[(b * s.hq + h) * s.s + i] = max + std::log(sum);
      }
    }
  }
  of.commit();
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, float softmax_scale,
                        const Tensor& segment_ids, const AttentionShape& s) {
  F32In qf(q), kf(k), vf(v), of(out), dof(dout);
  F32Out dqf(dq, false), dkf(dk, false), dvf(dv, false);
  std::fill_n(dqf.data(), q.numel(), 0.0f);
  std::fill_n(dkf.data(), k.numel(), 0.0f);
  std::fill_n(dvf.data(), v.numel(), 0.0f);
  const float* lse_in = lse.data_as<float>();
  const Rows qrows{s, s.hq}, kvrows{s, s.hkv};
  const Mask mask{segment_ids.defined() ? segment_ids.data_as<int32_t>() : nullptr, s.s};
  // One task per kv head: it alone writes that head's dk, dv and its query heads' dq.
#pragma omp parallel for collapse(2)
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t kvh = 0; kvh < s.hkv; ++kvh) {
      for (int64_t h = kvh * s.group(); h < (kvh + 1) * s.group(); ++h) {
        for (int64_t i = 0; i < s.s; ++i) {
          const int64_t qi_off = qrows.offset(b, i, h);
          const float* qi = qf.data() + qi_off;
          const float* doi = dof.data() + qi_off;
          float* dqi = dqf.data() + qi_off;
          const float lse_i = lse_in[(b * s.hq + h) * s.s + i];
          const float delta = dot(doi, of.data() + qi_off, s.d);
          for (int64_t j = 0; j <= i; ++j) {
            if (!mask(b, i, j)) continue;
            const int64_t kj_off = kvrows.offset(b, j, kvh);
            const float* kj = kf.data() + kj_off;
            const float p = std::exp(softmax_scale * dot(qi, kj, s.d) - lse_i);
            const float ds = p * (dot(doi, vf.data() + kj_off, s.d) - delta);
            float* dkj = dkf.data() + kj_off;
            float* dvj = dvf.data() + kj_off;
            for (int64_t d = 0; d < s.d; ++d) {
              dqi[d] += softmax_scale * ds * kj[d];
              dkj[d] += softmax_scale * ds * qi[d];
              dvj[d] += p * doi[d];
            }
          }
        }
      }
    }
  }
  dqf.commit();
  dkf.commit();
  dvf.commit();
}

void document_bounds(const Tensor& bounds, const Tensor& segment_ids) {
  const int64_t batch = segment_ids.size(0), seq = segment_ids.size(1);
  const int32_t* ids = segment_ids.data_as<int32_t>();
  int32_t* first = bounds.data_as<int32_t>();
  int32_t* last = first + batch * seq;
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t* row = ids + b * seq;
    const bool decreases = std::adjacent_find(row, row + seq, std::greater<int32_t>()) != row + seq;
    for (int64_t i = 0, start = 0; i < seq; ++i) {
      if (row[i] != row[start]) start = i;
      first[b * seq + i] = decreases ? -1 : int32_t(start);
    }
    for (int64_t i = seq - 1, end = seq - 1; i >= 0; --i) {
      if (row[i] != row[end]) end = i;
      last[b * seq + i] = decreases ? -1 : int32_t(end);
    }
  }
}

}  // namespace tessera::cpu
