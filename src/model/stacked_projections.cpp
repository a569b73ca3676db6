#include "model/stacked_projections.h"

#include <vector>

namespace tessera {

namespace {

// The rows of the tensors together when all are defined and alike (dtype, device, all dimensions
// but the first), else -1.
int64_t alike_rows(std::span<const Tensor* const> parts) {
  if (parts.empty() || !parts[0]->defined() || parts[0]->ndim() < 1) return -1;
  const Tensor& first = *parts[0];
  int64_t rows = 0;
  for (const Tensor* t : parts) {
    if (!t->defined() || t->dtype() != first.dtype() || t->device() != first.device() || t->ndim() != first.ndim())
      return -1;
    for (int d = 1; d < t->ndim(); ++d)
      if (t->size(d) != first.size(d)) return -1;
    rows += t->size(0);
  }
  return rows;
}

// The tensors moved into one buffer, each slot a view into it (or left as they are when they are
// not alike or already stacked).
void stack(std::initializer_list<Tensor*> slots) {
  const std::vector<const Tensor*> parts(slots.begin(), slots.end());
  const int64_t rows = alike_rows(parts);
  if (rows < 0 || stacked_view(parts).defined()) return;
  Shape shape = parts[0]->shape();
  shape[0] = rows;
  const Tensor buffer = Tensor::empty(shape, parts[0]->dtype(), parts[0]->device());
  int64_t row = 0;
  for (Tensor* t : slots) {
    const Tensor view = buffer.narrow(row, t->size(0));
    copy_bytes(view, *t);
    row += t->size(0);
    *t = view;
  }
}

}  // namespace

void stack_projections(ModelParams& params) {
  for (LayerParams& p : params.layers) {
    stack({&p.q_proj.weight, &p.k_proj.weight, &p.v_proj.weight});
    stack({&p.q_proj.bias, &p.k_proj.bias, &p.v_proj.bias});
    stack({&p.gate_proj.weight, &p.up_proj.weight});
  }
}

Tensor stacked_view(std::span<const Tensor* const> parts) {
  const int64_t rows = alike_rows(parts);
  if (rows < 0) return Tensor();
  const char* next = static_cast<const char*>(parts[0]->data());
  for (const Tensor* t : parts) {
    if (t->storage() != parts[0]->storage() || t->data() != next) return Tensor();
    next += t->nbytes();
  }
  Shape shape = parts[0]->shape();
  shape[0] = rows;
  return Tensor::wrap(parts[0]->data(), shape, parts[0]->dtype(), parts[0]->device(), parts[0]->storage());
}

}  // namespace tessera
