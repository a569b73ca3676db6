// Packed projections next to bf16: bench/quant_gemv_bench [1b|8b ...] [--m 1,2,...] [--schemes
// int8,int4_g32,...] [--variants auto,stream,...] [--fused-only]. First the fused decode ops over packed weights (q/k/v in one
// launch, gate/up with the SwiGLU, o, down, lm_head; M <= 8, every variant; "quant_fused": GB/s of
// packed bytes read). Then, for each projection of the
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
#include "kernels/packed_gemv_variant.h"

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

// The fused gemv's variants (kernels/packed_gemv_variant.h: TESSERA_PACKED_GEMV and the switches of
// its kernels), the default first; the wide and group ones differ from mma for int4 only (stream
// takes int8 too).
struct Variant {
  const char* label;
  bool int4_only;
  PackedGemvVariant env;
};
const Variant kVariants[] = {
    {"auto", false, {.gemv = "auto"}},
    {"v1", false, {.gemv = "v1"}},
    {"rows", false, {.gemv = "rows"}},
    {"rows_s1", false, {.gemv = "rows", .segments = "1"}},
    {"rows_s2", false, {.gemv = "rows", .segments = "2"}},
    {"rows_s4", false, {.gemv = "rows", .segments = "4"}},
    {"mma", false, {.gemv = "mma"}},
    {"mma_split", false, {.gemv = "mma", .split = "auto"}},
    {"wide", true, {.gemv = "wide"}},
    {"wide4", true, {.gemv = "wide4"}},
    {"wide_split", true, {.gemv = "wide", .split = "auto"}},
    {"wide4_split", true, {.gemv = "wide4", .split = "auto"}},
    {"wide_w8", true, {.gemv = "wide", .warps = "8"}},
    {"wide4_w8", true, {.gemv = "wide4", .warps = "8"}},
    {"group", true, {.gemv = "group"}},
    {"group_split", true, {.gemv = "group", .split = "auto"}},
    {"stream", false, {.gemv = "stream"}},
    {"stream_d4", false, {.gemv = "stream", .depth = "4"}},
    {"stream_d6", false, {.gemv = "stream", .depth = "6"}},
    {"stream_c2", true, {.gemv = "stream", .chains = "2"}},
    {"stream_d4_c2", true, {.gemv = "stream", .depth = "4", .chains = "2"}},
    {"stream_w1", false, {.gemv = "stream", .tile_warps = "1"}},
    {"stream_w2", false, {.gemv = "stream", .tile_warps = "2"}},
    {"stream_w4", false, {.gemv = "stream", .tile_warps = "4"}},
    {"stream_wauto", false, {.gemv = "stream", .tile_warps = "auto"}},
    {"stream_s0", true, {.gemv = "stream", .symmetric = "0"}}};

// --variants: the labels to time (auto always, first); empty: all.
std::vector<std::string> chosen_variants;
bool runs(const Variant& v) {
  return chosen_variants.empty() || std::string(v.label) == "auto" ||
         std::find(chosen_variants.begin(), chosen_variants.end(), v.label) != chosen_variants.end();
}

int copies_for(int64_t bytes) { return int(std::max<int64_t>(2, (int64_t(256) << 20) / std::max<int64_t>(bytes, 1) + 1)); }

// A comma-separated list ("1,2,4").
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (size_t at = 0; at <= s.size();) {
    const size_t end = std::min(s.find(',', at), s.size());
    if (end > at) out.push_back(s.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// The fused decode ops over packed weights, as a decode step runs them: q/k/v in one launch
// (project_many_packed), gate/up with the SwiGLU (project_swiglu_packed), o, down and the lm_head
// (Llama 3's 128,256 rows) by themselves, next to the bf16 project_many / project_swiglu, for each
// variant: RESULT {"what":"quant_fused", ...}.
void fused_ops(const std::string& shape, const std::vector<Projection>& ps, const Scheme& scheme, int64_t m) {
  const int64_t d = ps[0].k, q = ps[0].n, kv = ps[1].n, f = ps[2].n;
  struct Op {
    const char* name;
    int64_t k;
    std::vector<int64_t> rows;  // weights' rows
    bool swiglu;
  };
  for (const Op& op : {Op{"qkv", d, {q, kv, kv}, false}, Op{"gate_up_swiglu", d, {f, f}, true}, Op{"o", q, {d}, false},
                       Op{"down", f, {d}, false}, Op{"lm_head", d, {128256}, false}}) {
    const int64_t k = op.k;
    int64_t dense_bytes = 0, packed = 0;
    const QuantSpec spec = resolve_quant_spec(scheme.spec, {op.rows[0], k});
    for (int64_t n : op.rows) dense_bytes += n * k * 2, packed += packed_bytes(spec, {n, k});
    const int copies = copies_for(packed);
    std::vector<std::vector<Tensor>> dense(static_cast<size_t>(copies));
    std::vector<std::vector<PackedTensor>> w(static_cast<size_t>(copies));
    std::vector<Tensor> outs;
    for (int64_t n : op.rows) outs.push_back(Tensor::empty({m, op.swiglu ? f : n}, DType::BF16, gpu));
    for (int i = 0; i < copies; ++i)
      for (size_t j = 0; j < op.rows.size(); ++j) {
        Tensor d = Tensor::empty({op.rows[j], k}, DType::BF16, gpu);
        ops::fill_normal(d, 11 + i * 3 + j, 0, 0.0f, 0.02f);
        w[i].push_back(PackedTensor::empty(spec, {op.rows[j], k}, gpu));
        ops::quantize(w[i].back(), d);
        if (i < copies_for(dense_bytes)) dense[i].push_back(d);
      }
    Tensor a = Tensor::empty({m, k}, DType::BF16, gpu);
    ops::fill_normal(a, 5, 0, 0.0f, 1.0f);
    const int dense_copies = std::min(copies, copies_for(dense_bytes));
    auto run_dense = [&](int i) {
      if (op.swiglu) ops::project_swiglu(outs[0], a, dense[i][0], dense[i][1]);
      else ops::project_many(outs, a, dense[i]);
    };
    const double bf16_s = seconds_per_call(run_dense, dense_copies);
    std::string variant_us, variant_gbps;
    for (const Variant& v : kVariants) {
      if ((scheme.spec.scheme != QuantScheme::Int4 && v.int4_only) || !runs(v)) continue;
      set_packed_gemv_variant(v.env);
      const double t = seconds_per_call([&](int i) {
        std::vector<const PackedTensor*> ws;
        for (const PackedTensor& p : w[i]) ws.push_back(&p);
        if (op.swiglu) ops::project_swiglu_packed(outs[0], a, *ws[0], *ws[1]);
        else ops::project_many_packed(outs, a, ws);
      }, copies);
      char field[96];
      const char* sep = variant_us.empty() ? "" : ",";
      std::snprintf(field, sizeof(field), "%s\"%s\":%.2f", sep, v.label, t * 1e6);
      variant_us += field;
      std::snprintf(field, sizeof(field), "%s\"%s\":%.0f", sep, v.label, packed / t / 1e9);
      variant_gbps += field;
    }
    unset_packed_gemv_variant();
    std::printf("RESULT {\"what\":\"quant_fused\",\"shape\":\"%s\",\"op\":\"%s\",\"k\":%ld,\"scheme\":\"%s\","
                "\"m\":%ld,\"packed_mb\":%.2f,\"bf16_us\":%.2f,\"bf16_gbps\":%.0f,\"variant_us\":{%s},"
                "\"variant_gbps\":{%s}}\n",
                shape.c_str(), op.name, k, scheme.name, m, packed / 1e6, bf16_s * 1e6, dense_bytes / bf16_s / 1e9,
                variant_us.c_str(), variant_gbps.c_str());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TS_CHECK(cuda_device_count() > 0, "quant_gemv_bench needs a GPU: {}", cuda_unavailable_reason());
    std::vector<std::string> shapes, scheme_names;
    std::vector<int64_t> ms = {1, 2, 4, 8, 16, 2048};
    bool fused_only = false;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if ((arg == "--m" || arg == "--schemes" || arg == "--variants") && i + 1 < argc) {
        const std::vector<std::string> list = split_list(argv[++i]);
        if (arg == "--schemes") scheme_names = list;
        else if (arg == "--variants") chosen_variants = list;
        else {
          ms.clear();
          for (const std::string& v : list) ms.push_back(std::stoll(v));
        }
      } else if (arg == "--fused-only") {
        fused_only = true;
      } else {
        shapes.push_back(arg);
      }
    }
    for (const std::string& label : chosen_variants)
      TS_CHECK(std::any_of(std::begin(kVariants), std::end(kVariants), [&](const Variant& v) { return label == v.label; }),
               "quant_gemv_bench: unknown variant '{}' in --variants", label);
    if (shapes.empty()) shapes = {"1b", "8b"};
    auto chosen = [&](const Scheme& scheme) {
      return scheme_names.empty() || std::find(scheme_names.begin(), scheme_names.end(), scheme.name) != scheme_names.end();
    };
    for (const std::string& shape : shapes)
      for (const Scheme& scheme : kSchemes)
        for (const int64_t m : ms)
          if (chosen(scheme) && scheme.spec.scheme != QuantScheme::NF4 && m <= ops::kFusedPackedRows)
            fused_ops(shape, projections(shape), scheme, m);
    if (fused_only) return 0;
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
            if (!chosen(scheme)) continue;
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
                if ((scheme.spec.scheme != QuantScheme::Int4 && variant.int4_only) || !runs(variant)) continue;
                set_packed_gemv_variant(variant.env);
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
            unset_packed_gemv_variant();
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
