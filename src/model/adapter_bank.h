// Several LoRA adapters over one base model, held for inference that batches requests of
// different adapters (and of the base) in one step: the base gemm is shared, and each
// projection's low-rank products are applied to the rows of each adapter by ops::lora_batched.
// For each projection of each layer the adapters' A and B are stacked, padded to the largest rank
// there; an adapter that leaves the projection alone has rank 0 in it. src/lora fills one from
// PEFT adapter folders (lora/adapter_bank_loader.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/transformer_params.h"

namespace tessera {

struct StackedLora {
  Tensor a;       // [N, R, in], the model's dtype, on its device
  Tensor b;       // [N, out, R]
  Tensor ranks;   // int32 [N]: adapter n uses a[n, :ranks[n]] and b[n, :, :ranks[n]]
  Tensor scales;  // f32 [N]
  bool defined() const { return a.defined(); }  // undefined: no adapter adapts this projection
};

struct AdapterBank {
  std::vector<std::string> names;  // adapter n is names[n]
  std::vector<std::array<StackedLora, kProjections>> layers;

  int64_t size() const { return static_cast<int64_t>(names.size()); }
  // The index of an adapter by name: -1 for "" (the base); an Error naming it when it is not here.
  int32_t index(const std::string& name) const;
};

}  // namespace tessera
