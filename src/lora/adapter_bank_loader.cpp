#include "lora/adapter_bank_loader.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera::lora {

namespace {

// Adapter n's A [r, in] into rows [0, r) of a [N, R, in] and its B [out, r] into columns [0, r) of
// b [N, out, R] (f32 host tensors, zero elsewhere).
void place(const Tensor& a_n, const Tensor& b_n, int64_t n, Tensor& a, Tensor& b) {
  const Tensor a32 = ops::cast(a_n, DType::F32), b32 = ops::cast(b_n, DType::F32);
  const int64_t r = a32.size(0), in = a.size(2), out = b.size(1), R = a.size(1);
  std::memcpy(a.data_as<float>() + n * R * in, a32.data_as<float>(), sizeof(float) * r * in);
  for (int64_t o = 0; o < out; ++o)
    std::memcpy(b.data_as<float>() + (n * out + o) * R, b32.data_as<float>() + o * r, sizeof(float) * r);
}

}  // namespace

AdapterBank stack_adapters(const ModelConfig& config, const std::vector<std::pair<std::string, const PeftAdapter*>>& adapters,
                           DType dtype, Device device) {
  const int64_t N = static_cast<int64_t>(adapters.size());
  TS_CHECK(N > 0, "stack_adapters: no adapters");
  AdapterBank bank;
  for (const auto& [name, adapter] : adapters) {
    TS_CHECK(adapter->spec.saved_modules().empty(),
             "adapter '{}': it trains {} whole (modules_to_save), which cannot be served batched with other adapters; "
             "merge it into a model of its own (tessera export) instead", name, adapter->spec.saved_modules().front());
    TS_CHECK(std::find(bank.names.begin(), bank.names.end(), name) == bank.names.end(), "adapter '{}' is given twice",
             name);
    bank.names.push_back(name);
  }
  bank.layers.resize(config.num_hidden_layers);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (int p = 0; p < kProjections; ++p) {
      const Projection which = Projection(p);
      int64_t R = 0, in = 0, out = 0;
      for (const auto& [name, adapter] : adapters) {
        if (!adapter->spec.adapts(l, which)) continue;
        const Tensor a = adapter->tensor(lora_a_name(l, which)), b = adapter->tensor(lora_b_name(l, which));
        R = std::max(R, a.size(0));
        in = a.size(1);
        out = b.size(0);
      }
      if (R == 0) continue;
      Tensor a = Tensor::empty({N, R, in}, DType::F32), b = Tensor::empty({N, out, R}, DType::F32);
      ops::fill(a, 0.0f);
      ops::fill(b, 0.0f);
      std::vector<int32_t> ranks(N, 0);
      std::vector<float> scales(N, 0.0f);
      for (int64_t n = 0; n < N; ++n) {
        const PeftAdapter& adapter = *adapters[n].second;
        scales[n] = adapter.spec.scale();
        if (!adapter.spec.adapts(l, which)) continue;
        const Tensor a_n = adapter.tensor(lora_a_name(l, which)), b_n = adapter.tensor(lora_b_name(l, which));
        TS_CHECK(a_n.size(1) == in && b_n.size(0) == out, "adapter '{}': {} is {} where the others' are [*, {}]",
                 adapters[n].first, lora_a_name(l, which), a_n.str(), in);
        ranks[n] = static_cast<int32_t>(a_n.size(0));
        place(a_n, b_n, n, a, b);
      }
      StackedLora& s = bank.layers[l][p];
      s.a = ops::cast(a, dtype).to(device);
      s.b = ops::cast(b, dtype).to(device);
      s.ranks = Tensor::from_vector(ranks, {N}, DType::I32).to(device);
      s.scales = Tensor::from_vector(scales, {N}, DType::F32).to(device);
    }
  }
  return bank;
}

AdapterBank load_adapter_bank(const ModelConfig& config, const std::vector<std::pair<std::string, std::string>>& folders,
                              DType dtype, Device device) {
  std::vector<PeftAdapter> read;
  read.reserve(folders.size());
  for (const auto& [name, folder] : folders)
    read.push_back(with_context(fmt::format("adapter '{}' ({})", name, folder),
                                [&] { return read_peft_adapter(folder, config); }));
  std::vector<std::pair<std::string, const PeftAdapter*>> named;
  for (size_t i = 0; i < folders.size(); ++i) named.emplace_back(folders[i].first, &read[i]);
  return stack_adapters(config, named, dtype, device);
}

}  // namespace tessera::lora
