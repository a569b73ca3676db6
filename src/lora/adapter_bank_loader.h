// Several PEFT adapters stacked into one AdapterBank (model/adapter_bank.h) for inference that
// batches requests of different adapters in one step (tessera serve's `adapters:` / --lora).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "lora/peft.h"
#include "model/adapter_bank.h"

namespace tessera::lora {

// The adapters, in order (adapter n of the bank is adapters[n]), each already read for `config`
// (read_peft_adapter refuses one of another shape or target), stacked per projection in `dtype`
// on `device`. An adapter with modules_to_save (it replaces whole embedding or head tensors,
// which one batch cannot hold per row) is refused with one line naming it.
AdapterBank stack_adapters(const ModelConfig& config, const std::vector<std::pair<std::string, const PeftAdapter*>>& adapters,
                           DType dtype, Device device);

// Reads each (name, folder) with read_peft_adapter for `config`, then stack_adapters; errors name
// the adapter and its folder.
AdapterBank load_adapter_bank(const ModelConfig& config, const std::vector<std::pair<std::string, std::string>>& folders,
                              DType dtype, Device device);

}  // namespace tessera::lora
