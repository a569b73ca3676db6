// NF4 against the pinning vectors of tests/data/quant/nf4_reference.json, written by the
// independent pure-Python implementation of bitsandbytes' definition (tests/tools/nf4_reference.py):
// the code table, the thresholds, the 8-bit dynamic map, the scalar quantizers on every tie and
// its neighbours, and whole tensors (blocking, nibble order, padding, double quantization).
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/ops.h"
#include "kernels/quant_math.h"
#include "quant/packed.h"

using namespace tessera;
namespace qm = tessera::quant_math;

namespace {

const nlohmann::json& reference() {
  static const nlohmann::json j = [] {
    std::ifstream in(TESSERA_TEST_DATA "/quant/nf4_reference.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

float from_hex(const std::string& hex) {
  const uint32_t bits = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

std::string hex_bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", bits);
  return buf;
}

std::string hex_bytes(const Tensor& t) {
  std::string out;
  char buf[3];
  for (uint8_t b : t.to_vector<uint8_t>()) {
    std::snprintf(buf, sizeof(buf), "%02x", b);
    out += buf;
  }
  return out;
}

std::string sha256(const void* data, size_t bytes) {
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_Digest(data, bytes, digest, &len, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", digest[i]);
    out += buf;
  }
  return out;
}

void expect_table(const nlohmann::json& want, const float* got, size_t n, const char* name) {
  ASSERT_EQ(want.size(), n) << name;
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(hex_bits(got[i]), want[i].get<std::string>()) << name << "[" << i << "]";
}

// The Python generator: splitmix64, blocks of 64 with seven ranges.
uint64_t splitmix64(uint64_t state) {
  uint64_t z = state + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<float> generated(uint64_t seed, int64_t n) {
  std::vector<float> xs(n);
  for (int64_t i = 0; i < n; ++i) {
    const double u = double(splitmix64(seed + i) >> 40) / 16777216.0;
    xs[i] = float((2.0 * u - 1.0) * (1.0 + double(i / 64 % 7) / 4.0));
  }
  return xs;
}

std::vector<float> case_input(const nlohmann::json& c) {
  if (c.contains("input")) {
    std::vector<float> xs;
    for (const auto& h : c["input"]) xs.push_back(from_hex(h.get<std::string>()));
    return xs;
  }
  const Shape shape = c["shape"].get<Shape>();
  return generated(20240611, shape_numel(shape));
}

}  // namespace

TEST(Nf4Reference, TablesMatchBitsandbytes) {
  const qm::Nf4Tables& t = qm::nf4_tables();
  expect_table(reference()["nf4_code"], t.nf4, 16, "nf4");
  expect_table(reference()["nf4_thresholds"], t.thresholds, 15, "thresholds");
  expect_table(reference()["dynamic_map"], t.dynamic, 256, "dynamic map");
}

TEST(Nf4Reference, ScalarQuantizersOnEveryTieAndItsNeighbours) {
  const qm::Nf4Tables& t = qm::nf4_tables();
  for (const auto& probe : reference()["nf4_scalar"]) {
    const float x = from_hex(probe[0].get<std::string>());
    EXPECT_EQ(int(qm::nf4_index(x, t.thresholds)), probe[1].get<int>()) << "nf4 of " << x;
  }
  EXPECT_EQ(qm::nf4_index(std::nanf(""), t.thresholds), 0) << "an all-zero block gives NaN, code 0";
  int probes = 0;
  for (const auto& probe : reference()["dynamic_scalar"]) {
    const float x = from_hex(probe[0].get<std::string>());
    EXPECT_EQ(int(qm::dynamic_index(x, t.dynamic)), probe[1].get<int>()) << "dynamic of " << x;
    ++probes;
  }
  EXPECT_GT(probes, 1000);
}

TEST(Nf4Reference, TensorsQuantizeAndDequantizeAsTheReference) {
  for (const auto& c : reference()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const Shape shape = c["shape"].get<Shape>();
    const std::vector<float> xs = case_input(c);
    const Tensor x = Tensor::from_vector(xs, shape, DType::F32);
    const PackedTensor w = quant::quantize(x, {QuantScheme::NF4});
    EXPECT_EQ(hex_bytes(w.part("codes")), c["codes"].get<std::string>());
    EXPECT_EQ(hex_bytes(w.part("absmax")), c["absmax"].get<std::string>());
    const std::vector<float> scales = w.part("absmax_scale").to_vector<float>();
    expect_table(c["absmax_scale"], scales.data(), scales.size(), "absmax_scale");
    EXPECT_EQ(hex_bits(w.part("absmax_offset").to_vector<float>()[0]), c["absmax_offset"].get<std::string>());

    const std::vector<float> deq = quant::dequantize(w, DType::F32).to_vector<float>();
    EXPECT_EQ(sha256(deq.data(), deq.size() * 4), c["dequant_f32_sha256"].get<std::string>());
    const auto& first = c.contains("dequant_f32") ? c["dequant_f32"] : c["dequant_f32_first"];
    expect_table(first, deq.data(), first.size(), "dequantized");
    const std::vector<uint16_t> bf16 = quant::dequantize(w, DType::BF16).to_vector<uint16_t>();
    EXPECT_EQ(sha256(bf16.data(), bf16.size() * 2), c["dequant_bf16_sha256"].get<std::string>());
  }
}

TEST(Nf4Reference, Bf16InputsQuantizeLikeTheirFp32Values) {
  const std::vector<float> xs = generated(5, 1000);
  const Tensor x = Tensor::from_vector(xs, {10, 100}, DType::F32);
  const Tensor x16 = ops::cast(x, DType::BF16);
  const PackedTensor a = quant::quantize(x16, {QuantScheme::NF4});
  const PackedTensor b = quant::quantize(ops::cast(x16, DType::F32), {QuantScheme::NF4});
  for (size_t i = 0; i < a.parts.size(); ++i)
    EXPECT_EQ(std::memcmp(a.parts[i].data(), b.parts[i].data(), a.parts[i].nbytes()), 0) << "part " << i;
}
