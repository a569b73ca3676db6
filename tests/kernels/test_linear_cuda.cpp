// The CUDA ops of the Linear and LoRA section against their CPU references on fresh random
// inputs (label gpu): column sums in every block layout (one column, a few, many; rows in one
// chunk, in several, and in more chunks than one pass adds up), dropout on packs and on
// unaligned views; a projection with a packed (QLoRA) base.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "model/linear.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {
const Device gpu = Device::cuda(0);
}

class CudaColumnSum : public ::testing::TestWithParam<DType> {};

TEST_P(CudaColumnSum, MatchesCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  const std::pair<int64_t, int64_t> shapes[] = {{3000, 1}, {700, 5}, {100, 300}, {1500, 77}, {300000, 3}};
  for (const auto& [rows, cols] : shapes) {
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(::testing::Message() << rows << " x " << cols << (accumulate ? " +=" : " =") << " seed " << seed);
      const Tensor in = random_tensor({rows, cols}, dtype, Device::cpu(), seed);
      const Tensor start = random_tensor({cols}, DType::F32, Device::cpu(), seed + 1);
      Tensor cpu_out = start.clone(), gpu_out = start.to(gpu);
      ops::column_sum(cpu_out, in, accumulate);
      ops::column_sum(gpu_out, in.to(gpu), accumulate);
      EXPECT_LT(relative_error(gpu_out, cpu_out), 1e-5);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaColumnSum, ::testing::Values(DType::F32, DType::BF16));

class CudaDropout : public ::testing::TestWithParam<DType> {};

// The same counters give the same mask and the same rounding: equal bit for bit.
TEST_P(CudaDropout, EqualToCpu) {
  TS_REQUIRE_GPU();
  const DType dtype = GetParam();
  const uint64_t seed = fresh_seed();
  const int64_t n = 10003;
  for (int64_t at : {0, 1}) {
    SCOPED_TRACE(::testing::Message() << "view from element " << at << " seed " << seed);
    const Tensor x = random_tensor({n}, dtype, Device::cpu(), seed);
    const Tensor cpu_out = Tensor::empty({n}, dtype).flat_slice(at, n - at);
    const Tensor gpu_out = Tensor::empty({n}, dtype, gpu).flat_slice(at, n - at);
    ops::dropout(cpu_out, x.flat_slice(at, n - at), 0.1f, seed, 12345);
    ops::dropout(gpu_out, x.to(gpu).flat_slice(at, n - at), 0.1f, seed, 12345);
    EXPECT_EQ(host_f32(gpu_out), host_f32(cpu_out));
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaDropout, ::testing::Values(DType::F32, DType::BF16));

// QLoRA's projection on the GPU: a packed nf4/int8 base with bf16 activations and adapters
// against the fp32 CPU reference (the same packed bytes), output and input gradient, both ways
// of multiplying by the packed base.
TEST(CudaPackedLinear, MatchesCpu) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  for (QuantScheme scheme : {QuantScheme::NF4, QuantScheme::Int8}) {
    for (PackedMatmul mode : {PackedMatmul::dequantize, PackedMatmul::gemm_packed}) {
      SCOPED_TRACE(::testing::Message() << quant_scheme_name(scheme) << " mode " << int(mode) << " seed " << seed);
      const Tensor w = random_tensor({96, 128}, DType::F32, Device::cpu(), seed, 0.05f);
      const PackedTensor packed = quant::quantize(w, {.scheme = scheme});
      Linear cpu;
      cpu.packed = std::make_shared<const PackedTensor>(packed);
      cpu.packed_matmul = mode;
      cpu.lora_a = random_tensor({8, 128}, DType::F32, Device::cpu(), seed + 1, 0.1f);
      cpu.lora_b = random_tensor({96, 8}, DType::F32, Device::cpu(), seed + 2, 0.1f);
      cpu.lora_scale = 2.0f;
      Linear cuda = cpu;
      cuda.packed = std::make_shared<const PackedTensor>(packed.to(gpu));
      cuda.lora_a = ops::cast(cpu.lora_a.to(gpu), DType::BF16);
      cuda.lora_b = ops::cast(cpu.lora_b.to(gpu), DType::BF16);
      const Tensor x = random_tensor({64, 128}, DType::F32, Device::cpu(), seed + 3);
      const Tensor dy = random_tensor({64, 96}, DType::F32, Device::cpu(), seed + 4);
      Tensor xa_cpu, xa_gpu;
      const Tensor y_cpu = cpu.forward(x, &xa_cpu), y_gpu = cuda.forward(ops::cast(x.to(gpu), DType::BF16), &xa_gpu);
      EXPECT_EQ(y_gpu.dtype(), DType::BF16);
      EXPECT_LT(relative_error(y_gpu, y_cpu), 1e-2);
      Linear no_grads;
      const Tensor dx_cpu = Tensor::empty({64, 128}, DType::F32), dx_gpu = Tensor::empty({64, 128}, DType::BF16, gpu);
      cpu.backward(dy, x, xa_cpu, no_grads, dx_cpu, false);
      cuda.backward(ops::cast(dy.to(gpu), DType::BF16), ops::cast(x.to(gpu), DType::BF16), xa_gpu, no_grads, dx_gpu, false);
      EXPECT_LT(relative_error(dx_gpu, dx_cpu), 1e-2);
    }
  }
}
