// The CUDA paths against transformers (float64): bf16 logits <= 2e-2, fp32 tight.
#include "model_parity.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(ModelParityCuda, Bf16MatchesTransformers) {
  TS_REQUIRE_GPU();
  for (const std::string& folder : hf_reference_models())
    check_parity(folder, Device::cuda(0), DType::BF16, {2e-2, 2e-2, 1e-1}, /*check_grads=*/true);
}

TEST(ModelParityCuda, Fp32MatchesTransformers) {
  TS_REQUIRE_GPU();
  for (const std::string& folder : hf_reference_models())
    check_parity(folder, Device::cuda(0), DType::F32, {1e-4, 1e-5, 1e-3}, /*check_grads=*/true);
}
