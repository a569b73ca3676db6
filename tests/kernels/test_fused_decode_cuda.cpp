// A decode step's fused ops on the GPU (project_many, project_swiglu, rope_kv_write) against the
// plain ops they stand for, on fresh random inputs: against the CPU reference within the
// activation dtype's rounding, and against the same plain ops on the GPU bit for bit where both
// run the same arithmetic (the gemv at M <= 4, cuBLASLt beyond; RoPE without Qwen3's norms).
// Shapes: the 1B and 8B Llama layers, Qwen2 (q/k/v biases) and Qwen3 (q/k norms), GQA ratios
// 1..8, M = 1..16, and odd sizes (a weight of one row, K = 8).
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);
const Device cpu = Device::cpu();

struct ManyCase {
  int64_t m, k;
  std::vector<int64_t> n;  // rows of each weight
  bool bias = false;
  DType dtype = DType::BF16;
};

void check_project_many(const ManyCase& c) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << c.m << " k " << c.k << " weights " << c.n.size()
                                    << " bias " << c.bias << " " << dtype_name(c.dtype));
  const size_t count = c.n.size();
  const Tensor x = random_tensor({c.m, c.k}, c.dtype, gpu, seed);
  std::vector<Tensor> w, b, outs, cpu_w, cpu_b, cpu_outs;
  for (size_t i = 0; i < count; ++i) {
    w.push_back(random_tensor({c.n[i], c.k}, c.dtype, gpu, seed + 1 + i, 0.05f));
    b.push_back(c.bias ? random_tensor({c.n[i]}, c.dtype, gpu, seed + 10 + i) : Tensor());
    outs.push_back(Tensor::empty({c.m, c.n[i]}, c.dtype, gpu));
    ops::fill(outs.back(), std::numeric_limits<float>::quiet_NaN());  // every element must be written
    cpu_w.push_back(on_cpu(w[i]));
    cpu_b.push_back(c.bias ? on_cpu(b[i]) : Tensor());
    cpu_outs.push_back(Tensor::empty({c.m, c.n[i]}, c.dtype));
  }
  ops::project_many(outs, x, w, c.bias ? std::span<const Tensor>(b) : std::span<const Tensor>());
  ops::project_many(cpu_outs, on_cpu(x), cpu_w, c.bias ? std::span<const Tensor>(cpu_b) : std::span<const Tensor>());
  for (size_t i = 0; i < count; ++i) {
    SCOPED_TRACE(::testing::Message() << "weight " << i << " of " << c.n[i] << " rows");
    EXPECT_LT(relative_error(outs[i], cpu_outs[i]), rounding_tolerance(c.dtype));
    Tensor plain = Tensor::empty({c.m, c.n[i]}, c.dtype, gpu);
    ops::gemm(plain, x, w[i], false, true, 1.0f, 0.0f, b[i]);
    if (c.bias) {
      EXPECT_LT(relative_error(outs[i], plain), rounding_tolerance(c.dtype));  // cuBLASLt adds the bias itself
    } else {
      EXPECT_EQ(host_f32(outs[i]), host_f32(plain)) << "the same kernel's arithmetic";
    }
  }
}

}  // namespace

TEST(CudaProjectMany, LlamaLayersAtDecodeSizes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4, 5, 8, 16}) {
    check_project_many({m, 2048, {2048, 512, 512}});    // 1B q, k, v
    check_project_many({m, 4096, {4096, 1024, 1024}});  // 8B
  }
}

TEST(CudaProjectMany, BiasesOddSizesAndDtypes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 4, 7}) {
    check_project_many({m, 896, {896, 128, 128}, true});                 // Qwen2-0.5B q, k, v with biases
    check_project_many({m, 8, {1, 2, 3}});                               // the smallest K the gemv takes
    check_project_many({m, 24, {7, 13}});                                // two weights, a K of three loads
    check_project_many({m, 2056, {33}});                                 // one weight, K past whole rounds
    check_project_many({m, 520, {64, 64, 64}, false, DType::F16});
    check_project_many({m, 100, {5, 9, 3}, true, DType::F32});           // the gemv takes no f32: gemm each
    check_project_many({m, 12, {4, 4, 4}});                              // K % 8 != 0: gemm each
  }
  check_project_many({3, 64, {16, 16, 16, 16}});  // four weights: more than one launch takes
}

TEST(CudaProjectMany, CublasChoiceFallsBack) {
  TS_REQUIRE_GPU();
  const SmallMChoice before = ops::small_m_choice();
  ops::set_small_m_choice({SmallMKernel::CuBlas});
  check_project_many({1, 2048, {2048, 512, 512}});
  check_project_many({2, 896, {896, 128, 128}, true});
  ops::set_small_m_choice(before);
}

namespace {

void check_project_swiglu(int64_t m, int64_t f, int64_t k, DType dtype) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " m " << m << " f " << f << " k " << k << " "
                                    << dtype_name(dtype));
  const Tensor x = random_tensor({m, k}, dtype, gpu, seed);
  const Tensor gate = random_tensor({f, k}, dtype, gpu, seed + 1, 0.1f), up = random_tensor({f, k}, dtype, gpu, seed + 2, 0.05f);
  Tensor out = Tensor::empty({m, f}, dtype, gpu), cpu_out = Tensor::empty({m, f}, dtype);
  ops::fill(out, std::numeric_limits<float>::quiet_NaN());
  ops::project_swiglu(out, x, gate, up);
  ops::project_swiglu(cpu_out, on_cpu(x), on_cpu(gate), on_cpu(up));
  EXPECT_LT(relative_error(out, cpu_out), rounding_tolerance(dtype));
  // The three plain ops on the GPU.
  Tensor g = Tensor::empty({m, f}, dtype, gpu), u = Tensor::empty({m, f}, dtype, gpu), plain = Tensor::empty({m, f}, dtype, gpu);
  ops::gemm(g, x, gate, false, true);
  ops::gemm(u, x, up, false, true);
  ops::swiglu_forward(plain, g, u);
  EXPECT_EQ(host_f32(out), host_f32(plain)) << "the same arithmetic";
}

}  // namespace

TEST(CudaProjectSwiglu, LlamaMlpsAtDecodeSizes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 2, 3, 4, 6, 16}) {
    check_project_swiglu(m, 8192, 2048, DType::BF16);   // 1B
    check_project_swiglu(m, 14336, 4096, DType::BF16);  // 8B
  }
}

TEST(CudaProjectSwiglu, OddSizesAndDtypes) {
  TS_REQUIRE_GPU();
  for (int64_t m : {1, 3, 4, 5}) {
    check_project_swiglu(m, 1, 8, DType::BF16);     // one column: half a block
    check_project_swiglu(m, 7, 24, DType::BF16);
    check_project_swiglu(m, 4864, 896, DType::F16);  // Qwen2-0.5B
    check_project_swiglu(m, 33, 2056, DType::BF16);
    check_project_swiglu(m, 9, 12, DType::BF16);    // K % 8 != 0: the plain ops
    check_project_swiglu(m, 17, 40, DType::F32);
  }
}

namespace {

struct RopeCase {
  int64_t tokens, hq, hkv, d;
  bool qk_norm = false;
  DType norm_dtype = DType::BF16;
  DType dtype = DType::BF16;
};

// Distinct slots of a cache of `slots` slots, every fifth one -1 (a padding row).
Tensor random_slots(int64_t tokens, int64_t slots, uint64_t seed) {
  std::vector<int32_t> all(slots);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), std::mt19937_64(seed));
  std::vector<int32_t> picked(all.begin(), all.begin() + tokens);
  for (int64_t t = 3; t < tokens; t += 5) picked[t] = -1;
  return Tensor::from_vector(picked, {tokens}, DType::I32);
}

Tensor random_positions(int64_t tokens, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> pos(tokens);
  for (auto& p : pos) p = static_cast<int32_t>(gen() % 33000);
  return Tensor::from_vector(pos, {tokens}, DType::I32);
}

struct KvState {
  Tensor q, k, v, k_cache, v_cache;
};

KvState fresh_state(const RopeCase& c, Device device, const KvState* like = nullptr) {
  if (like) return {like->q.to(device).clone(), like->k.to(device).clone(), like->v.to(device).clone(),
                    like->k_cache.to(device).clone(), like->v_cache.to(device).clone()};
  const uint64_t seed = fresh_seed();
  const Shape cache{7, 16, c.hkv, c.d};
  KvState s{random_tensor({c.tokens, c.hq, c.d}, c.dtype, device, seed), random_tensor({c.tokens, c.hkv, c.d}, c.dtype, device, seed + 1),
            random_tensor({c.tokens, c.hkv, c.d}, c.dtype, device, seed + 2), Tensor::empty(cache, c.dtype, device),
            Tensor::empty(cache, c.dtype, device)};
  ops::fill(s.k_cache, std::numeric_limits<float>::quiet_NaN());  // untouched slots stay NaN
  ops::fill(s.v_cache, std::numeric_limits<float>::quiet_NaN());
  return s;
}

void check_rope_kv_write(const RopeCase& c) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " tokens " << c.tokens << " hq " << c.hq << " hkv " << c.hkv
                                    << " d " << c.d << " qk_norm " << c.qk_norm << " " << dtype_name(c.dtype));
  const Tensor positions = random_positions(c.tokens, seed), slots = random_slots(c.tokens, 7 * 16, seed + 1);
  const Tensor freq = inverse_frequencies(c.d, 500000.0);
  const float scaling = c.d == 64 ? 1.0f : 1.2f, eps = 1e-6f;
  Tensor q_norm, k_norm;
  if (c.qk_norm) {
    q_norm = random_tensor({c.d}, c.norm_dtype, cpu, seed + 2);
    k_norm = random_tensor({c.d}, c.norm_dtype, cpu, seed + 3);
  }
  const auto dev = [](const Tensor& t) { return t.defined() ? t.to(gpu) : Tensor(); };
  KvState fused = fresh_state(c, gpu), want = fresh_state(c, cpu, &fused), plain = fresh_state(c, gpu, &fused);
  ops::rope_kv_write(fused.q, fused.k, fused.v, positions.to(gpu), freq.to(gpu), scaling, dev(q_norm), dev(k_norm), eps,
                     slots.to(gpu), fused.k_cache, fused.v_cache);
  ops::rope_kv_write(want.q, want.k, want.v, positions, freq, scaling, q_norm, k_norm, eps, slots, want.k_cache,
                     want.v_cache);
  expect_close(fused.q, want.q, c.dtype, false, "q");
  expect_close(fused.k, want.k, c.dtype, false, "k");
  expect_close(fused.k_cache, want.k_cache, c.dtype, false, "k_cache");
  expect_close(fused.v_cache, want.v_cache, c.dtype, true, "v_cache");
  if (c.qk_norm) return;
  // Without norms: the plain GPU ops' numbers exactly.
  ops::rope_forward_qk(plain.q, plain.k, positions.to(gpu), freq.to(gpu), scaling);
  ops::paged_kv_write(plain.k, plain.v, slots.to(gpu), plain.k_cache, plain.v_cache);
  expect_close(fused.q, plain.q, c.dtype, true, "q as rope_forward_qk");
  expect_close(fused.k_cache, plain.k_cache, c.dtype, true, "k_cache as rope + paged_kv_write");
}

}  // namespace

TEST(CudaRopeKvWrite, LlamaShapes) {
  TS_REQUIRE_GPU();
  for (int64_t tokens : {1, 2, 5, 16, 33}) {
    check_rope_kv_write({tokens, 32, 8, 64});   // 1B
    check_rope_kv_write({tokens, 32, 8, 128});  // 8B
    check_rope_kv_write({tokens, 14, 2, 64});   // Qwen2-0.5B, GQA 7
    check_rope_kv_write({tokens, 4, 4, 256});   // no grouping, the largest head
    check_rope_kv_write({tokens, 6, 2, 32, false, DType::BF16, DType::F16});
    check_rope_kv_write({tokens, 3, 1, 16, false, DType::BF16, DType::F32});
  }
}

TEST(CudaRopeKvWrite, Qwen3QkNorms) {
  TS_REQUIRE_GPU();
  for (int64_t tokens : {1, 4, 16, 21}) {
    check_rope_kv_write({tokens, 16, 8, 128, true});                // Qwen3-0.6B
    check_rope_kv_write({tokens, 32, 8, 128, true, DType::F32});    // f32 norm weights
    check_rope_kv_write({tokens, 8, 1, 64, true, DType::F16, DType::F16});
    check_rope_kv_write({tokens, 5, 5, 96, true, DType::F32, DType::F32});
  }
}

TEST(CudaRopeKvWrite, SlotOutsideTheCacheIsRefusedOnTheCpu) {
  // The GPU traps on such a slot (it would lose the context); the CPU reference names it.
  const RopeCase c{2, 4, 2, 16};
  KvState s = fresh_state(c, cpu);
  const Tensor slots = Tensor::from_vector(std::vector<int32_t>{3, 7 * 16}, {2}, DType::I32);
  EXPECT_THROW(ops::rope_kv_write(s.q, s.k, s.v, random_positions(2, 1), inverse_frequencies(16, 1e4), 1.0f, Tensor(),
                                  Tensor(), 1e-6f, slots, s.k_cache, s.v_cache),
               Error);
}
