// Packed projections next to bf16: bench/quant_gemv_bench [1b|8b ...]. For each projection of the
// shape's layer (q/o, k/v, gate/up, down), each scheme and M rows of activations: the fused gemv
// (M <= 16; each variant of TESSERA_PACKED_GEMV too), dequantize + cuBLASLt (the prefill path,
// every M; for M > 16 also in L2-sized blocks of rows, DequantizeChunked, the dequantize alone,
// and both again with int4 and int8 dequantized unit by unit, TESSERA_DEQUANTIZE=units) and the
// bf16 gemm, in us per call and effective GB/s (weights + activations + outputs moved, over the
// time; the dequantize alone: packed + bf16 bytes). Each path cycles through
// enough copies of its weights (>= 256 MB) that they come from HBM, not the 50 MB L2, as in a
// real decoding step. One line per case: RESULT {...}. Runs on cuda:0.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/stream.h"
#include "kernels/ops.h"

using namespace tessera;

namespace {

const Device gpu = Device::cuda(0);

struct Projection {
  const char* name;
  int64_t n, k;
};

std::vector<Projection> projections(const std::string& shape) {
  if (shape == "1b") return {{"q_o", 2048, 2048}, {"k_v", 512, 2048}, {"gate_up", 8192, 2048}, {"down", 2048, 8192}};
  if (shape == "8b") return {{"q_o", 4096, 4096}, {"k_v", 1024, 4096}, {"gate_up", 14336, 4096}, {"down", 4096, 14336}};
  throw Error("quant_gemv_bench: unknown shape '" + shape + "' (1b or 8b)");
}

struct Scheme {
  const char* name;
  QuantSpec spec;
};

const Scheme kSchemes[] = {{"int8", {QuantScheme::Int8}},          {"int4_g32", {QuantScheme::Int4, 32, true}},
                           {"int4_g128_asym", {QuantScheme::Int4, 128, false}}, {"q8_0", {QuantScheme::Q8_0}},
                           {"q4_0", {QuantScheme::Q4_0}},          {"nf4", {QuantScheme::NF4}}};

// Seconds per call of fn(i) (i cycles through the copies), about 30 ms of calls after a warm-up.
double seconds_per_call(const std::function<void(int)>& fn, int copies) {
  for (int i = 0; i < 3; ++i) fn(i % copies);
  synchronize_device(gpu);
  auto time = [&](int iters) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn(i % copies);
    synchronize_device(gpu);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
  };
  const double first = time(5);
  return time(int(std::clamp(0.03 / first, 10.0, 2000.0)));
}

// The fused gemv's variants (TESSERA_PACKED_GEMV, and TESSERA_PACKED_GEMV_WARPS and _SPLIT where
// set), the default first; the wide ones differ from mma for int4 only.
struct Variant {
  const char* label;
  const char* gemv;
  const char* warps;  // "": chosen by size
  const char* split;  // "": none
  bool int4_only;
};
const Variant kVariants[] = {{"auto", "auto", "", "", false},         {"v1", "v1", "", "", false},
                             {"mma", "mma", "", "", false},           {"mma_split", "mma", "", "auto", false},
                             {"wide", "wide", "", "", true},          {"wide4", "wide4", "", "", true},
                             {"wide_split", "wide", "", "auto", true}, {"wide4_split", "wide4", "", "auto", true},
                             {"wide_w8", "wide", "8", "", true},       {"wide4_w8", "wide4", "8", "", true},
                             {"group", "group", "", "", true},         {"group_split", "group", "", "auto", true}};

int copies_for(int64_t bytes) { return int(std::max<int64_t>(2, (int64_t(256) << 20) / std::max<int64_t>(bytes, 1) + 1)); }

}  // namespace

int main(int argc, char** argv) {
  try {
    TS_CHECK(cuda_device_count() > 0, "quant_gemv_bench needs a GPU: {}", cuda_unavailable_reason());
    std::vector<std::string> shapes;
    for (int i = 1; i < argc; ++i) shapes.push_back(argv[i]);
    if (shapes.empty()) shapes = {"1b", "8b"};
    const std::vector<int64_t> ms = {1, 2, 4, 8, 16, 2048};
    for (const std::string& shape : shapes)
      for (const Projection& p : projections(shape)) {
        // bf16 weights: the baseline, and what each scheme quantizes.
        const int64_t bf16_bytes = p.n * p.k * 2;
        std::vector<Tensor> dense(copies_for(bf16_bytes));
        for (size_t i = 0; i < dense.size(); ++i) {
          dense[i] = Tensor::empty({p.n, p.k}, DType::BF16, gpu);
          ops::fill_normal(dense[i], 7 + i, 0, 0.0f, 0.02f);
        }
        for (const int64_t m : ms) {
          Tensor a = Tensor::empty({m, p.k}, DType::BF16, gpu), c = Tensor::empty({m, p.n}, DType::BF16, gpu);
          ops::fill_normal(a, 3, 0, 0.0f, 1.0f);
          const int64_t io_bytes = (m * p.k + m * p.n) * 2;
          const double bf16_s = seconds_per_call(
              [&](int i) { ops::gemm(c, a, dense[i], false, true); }, int(dense.size()));
          for (const Scheme& scheme : kSchemes) {
            const QuantSpec spec = resolve_quant_spec(scheme.spec, {p.n, p.k});
            const int64_t packed = packed_bytes(spec, {p.n, p.k});
            std::vector<PackedTensor> w(copies_for(packed));
            for (size_t i = 0; i < w.size(); ++i) {
              w[i] = PackedTensor::empty(spec, {p.n, p.k}, gpu);
              ops::quantize(w[i], dense[i % dense.size()]);
            }
            const int copies = int(w.size());
            double fused_s = 0;
            std::string variant_us, variant_gbps;
            if (m <= 16)
              for (const Variant& variant : kVariants) {
                const bool first = &variant == &kVariants[0];
                if (scheme.spec.scheme == QuantScheme::NF4 && !first) continue;  // v1 only
                if (scheme.spec.scheme != QuantScheme::Int4 && variant.int4_only) continue;
                setenv("TESSERA_PACKED_GEMV", variant.gemv, 1);
                setenv("TESSERA_PACKED_GEMV_WARPS", variant.warps, 1);
                setenv("TESSERA_PACKED_GEMV_SPLIT", variant.split, 1);
                const double t = seconds_per_call([&](int i) {
                  ops::gemm_packed(c, a, w[i], true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Fused);
                }, copies);
                if (first) fused_s = t;
                char field[96];
                const char* sep = variant_us.empty() ? "" : ",";
                std::snprintf(field, sizeof(field), "%s\"%s\":%.2f", sep, variant.label, t * 1e6);
                variant_us += field;
                std::snprintf(field, sizeof(field), "%s\"%s\":%.0f", sep, variant.label, (packed + io_bytes) / t / 1e9);
                variant_gbps += field;
              }
            unsetenv("TESSERA_PACKED_GEMV");
            unsetenv("TESSERA_PACKED_GEMV_WARPS");
            unsetenv("TESSERA_PACKED_GEMV_SPLIT");
            const double dequant_s = seconds_per_call([&](int i) {
              ops::gemm_packed(c, a, w[i], true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Dequantize);
            }, copies);
            double chunked_s = 0, unpack_s = 0, units_s = 0, unpack_units_s = 0;
            if (m > 16) {
              chunked_s = seconds_per_call([&](int i) {
                ops::gemm_packed(c, a, w[i], true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::DequantizeChunked);
              }, copies);
              // The prefill path's dequantize alone: how much of dequant_us is not the gemm.
              const Tensor workspace = Tensor::empty({p.n, p.k}, DType::BF16, gpu);
              unpack_s = seconds_per_call([&](int i) { ops::dequantize(workspace, w[i]); }, copies);
              // The same with int4 and int8 dequantized unit by unit (TESSERA_DEQUANTIZE=units).
              if (spec.scheme == QuantScheme::Int4 || spec.scheme == QuantScheme::Int8) {
                setenv("TESSERA_DEQUANTIZE", "units", 1);
                unpack_units_s = seconds_per_call([&](int i) { ops::dequantize(workspace, w[i]); }, copies);
                units_s = seconds_per_call([&](int i) {
                  ops::gemm_packed(c, a, w[i], true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Dequantize);
                }, copies);
                unsetenv("TESSERA_DEQUANTIZE");
              }
            }
            const double auto_s = m <= ops::kFusedPackedRows ? fused_s : dequant_s;
            std::printf("RESULT {\"what\":\"quant_gemv\",\"shape\":\"%s\",\"proj\":\"%s\",\"n\":%ld,\"k\":%ld,"
                        "\"scheme\":\"%s\",\"m\":%ld,\"packed_mb\":%.2f,\"fused_us\":%.2f,\"fused_gbps\":%.0f,"
                        "\"dequant_us\":%.2f,\"chunked_us\":%.2f,\"bf16_us\":%.2f,\"bf16_gbps\":%.0f,\"auto_vs_bf16\":%.2f,"
                        "\"dequantize_us\":%.2f,\"dequantize_gbps\":%.0f,\"dequant_units_us\":%.2f,\"dequantize_units_us\":%.2f,"
                        "\"dequantize_units_gbps\":%.0f,\"variant_us\":{%s},\"variant_gbps\":{%s}}\n",
                        shape.c_str(), p.name, p.n, p.k, scheme.name, m, packed / 1e6, fused_s * 1e6,
                        fused_s > 0 ? (packed + io_bytes) / fused_s / 1e9 : 0.0, dequant_s * 1e6, chunked_s * 1e6, bf16_s * 1e6,
                        (bf16_bytes + io_bytes) / bf16_s / 1e9, bf16_s / auto_s, unpack_s * 1e6,
                        unpack_s > 0 ? (packed + bf16_bytes) / unpack_s / 1e9 : 0.0, units_s * 1e6, unpack_units_s * 1e6,
                        unpack_units_s > 0 ? (packed + bf16_bytes) / unpack_units_s / 1e9 : 0.0, variant_us.c_str(),
                        variant_gbps.c_str());
            std::fflush(stdout);
          }
        }
      }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_gemv_bench: %s\n", e.what());
    return 1;
  }
}
