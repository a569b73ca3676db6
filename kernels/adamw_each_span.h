// ops::adamw_spans as one ops::adamw per span and a fill of the padding, on whichever backend's
// adamw and fill are given: the CPU reference, and the GPU's per-span variant (TESSERA_ADAMW=ranges).
#pragma once

#include <vector>

#include "kernels/ops.h"

namespace tessera {

template <typename Adamw, typename Fill>
void adamw_each_span(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
                     const Tensor& low, const std::vector<ops::AdamWSpan>& spans, Adamw adamw, Fill fill) {
  auto part = [](const Tensor& t, int64_t at, int64_t n) { return t.defined() ? t.flat_slice(at, n) : Tensor(); };
  for (const ops::AdamWSpan& span : spans) {
    const int64_t n = span.end - span.begin;
    if (n == 0) continue;
    ops::AdamWStep step = s;
    if (!span.decays) step.weight_decay = 0.0f;
    adamw(part(param, span.begin, n), part(grad, span.begin, n), part(m, span.begin, n), part(v, span.begin, n), step,
          part(low, span.begin, n));
  }
  const int64_t tiled = spans.empty() ? 0 : spans.back().end;
  if (low.defined() && tiled < low.numel()) fill(low.flat_slice(tiled, low.numel() - tiled), 0.0f);
  if (s.zero_grad && tiled < grad.numel()) fill(grad.flat_slice(tiled, grad.numel() - tiled), 0.0f);
}

}  // namespace tessera
