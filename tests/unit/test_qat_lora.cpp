// QAT together with LoRA (model/linear.h): the merged weight W' = W + s B A is what is
// fake-quantized. The forward against x Q(W')^T + b written out here; the gradients against the
// straight-through estimator's, G = mask(W') * dy^T x, dA = s B^T G, dB = s G A^T, dx = dy Q(W');
// under int8 (which never clamps) dA and dB against central differences of the unquantized merged
// product; and a QAT + LoRA job whose exported merged quantized checkpoint gives `tessera eval`
// the job's own eval loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "finite_differences.h"
#include "kernels/ops.h"
#include "model/linear.h"
#include "random_tensors.h"
#include "run_command.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

constexpr int64_t kRows = 5, kIn = 64, kOut = 8, kRank = 4;
constexpr float kScale = 0.75f;

// The weight fake quantization of QAT (as engine/qat.cpp's), under `spec`.
class TestQuantizer : public FakeQuantizer {
 public:
  explicit TestQuantizer(QuantSpec spec) : spec_(spec) {}
  Tensor apply(const Tensor& w) const override {
    Tensor out = Tensor::empty(w.shape(), w.dtype(), w.device());
    ops::fake_quantize(out, w, spec_);
    return out;
  }
  void mask_gradient(const Tensor& grad, const Tensor& w) const override { ops::fake_quantize_mask(grad, w, spec_); }

 private:
  QuantSpec spec_;
};

Linear random_lora(uint64_t seed, const QuantSpec* qat) {
  Linear l;
  l.weight = random_tensor({kOut, kIn}, DType::F32, Device::cpu(), seed);
  l.bias = random_tensor({kOut}, DType::F32, Device::cpu(), seed + 1);
  l.lora_a = random_tensor({kRank, kIn}, DType::F32, Device::cpu(), seed + 2, 0.3f);
  l.lora_b = random_tensor({kOut, kRank}, DType::F32, Device::cpu(), seed + 3, 0.3f);
  l.lora_scale = kScale;
  if (qat) l.fake_quant = std::make_shared<TestQuantizer>(*qat);
  return l;
}

Tensor zeros_like(const Tensor& t) {
  Tensor g = Tensor::empty(t.shape(), DType::F32);
  ops::fill(g, 0.0f);
  return g;
}

// W + s B A, in double, rounded to f32 once.
Tensor merged_by_hand(const Linear& l) {
  const auto W = l.weight.to_vector<float>(), A = l.lora_a.to_vector<float>(), B = l.lora_b.to_vector<float>();
  std::vector<float> m(W.size());
  for (int64_t o = 0; o < kOut; ++o)
    for (int64_t i = 0; i < kIn; ++i) {
      double v = W[o * kIn + i];
      for (int64_t r = 0; r < kRank; ++r) v += double(kScale) * B[o * kRank + r] * A[r * kIn + i];
      m[o * kIn + i] = static_cast<float>(v);
    }
  return Tensor::from_vector(m, {kOut, kIn}, DType::F32);
}

}  // namespace

TEST(QatLora, ForwardAndGradientsAreTheMergedWeightsThroughTheEstimator) {
  const uint64_t seed = fresh_seed();
  for (const QuantSpec spec : {QuantSpec{QuantScheme::Int4, 32, false}, QuantSpec{QuantScheme::Q4_0},
                               QuantSpec{QuantScheme::Int8}}) {
    SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " seed " << seed);
    const Linear l = random_lora(seed, &spec);
    ASSERT_TRUE(l.merged_qat());
    const Tensor x = random_tensor({kRows, kIn}, DType::F32, Device::cpu(), seed + 9);
    const Tensor merged = merged_by_hand(l);
    Tensor q = Tensor::empty({kOut, kIn}, DType::F32);
    ops::fake_quantize(q, merged, spec);
    const auto X = x.to_vector<float>(), Q = q.to_vector<float>(), b = l.bias.to_vector<float>();

    Tensor xa;
    const auto y = l.forward(x, &xa).to_vector<float>();
    for (int64_t t = 0; t < kRows; ++t)
      for (int64_t o = 0; o < kOut; ++o) {
        double want = b[o];
        for (int64_t i = 0; i < kIn; ++i) want += double(X[t * kIn + i]) * Q[o * kIn + i];
        EXPECT_NEAR(y[t * kOut + o], want, 1e-4 * (1 + std::abs(want))) << t << ", " << o;
      }
    // Not the unmerged product: the adapter's contribution is quantized with W.
    const Linear plain = random_lora(seed, nullptr);
    EXPECT_GT(relative_error(l.forward(x).to_vector<float>(), plain.forward(x).to_vector<float>()), 1e-4);

    const Tensor dy = random_tensor({kRows, kOut}, DType::F32, Device::cpu(), seed + 11);
    Linear g;
    g.bias = zeros_like(l.bias);
    g.lora_a = zeros_like(l.lora_a);
    g.lora_b = zeros_like(l.lora_b);
    Tensor dx = Tensor::empty({kRows, kIn}, DType::F32);
    l.backward(dy, x, xa, g, dx, false);
    // G = mask(W') * dy^T x; dA = s B^T G; dB = s G A^T; dx = dy Q(W').
    Tensor mask = Tensor::empty({kOut, kIn}, DType::F32);
    ops::fill(mask, 1.0f);
    ops::fake_quantize_mask(mask, merged, spec);
    const auto DY = dy.to_vector<float>(), M = mask.to_vector<float>();
    const auto A = l.lora_a.to_vector<float>(), B = l.lora_b.to_vector<float>();
    std::vector<double> G(kOut * kIn, 0.0);
    for (int64_t o = 0; o < kOut; ++o)
      for (int64_t i = 0; i < kIn; ++i) {
        for (int64_t t = 0; t < kRows; ++t) G[o * kIn + i] += double(DY[t * kOut + o]) * X[t * kIn + i];
        G[o * kIn + i] *= M[o * kIn + i];
      }
    std::vector<float> dA(kRank * kIn), dB(kOut * kRank), DX(kRows * kIn), db(kOut);
    for (int64_t r = 0; r < kRank; ++r)
      for (int64_t i = 0; i < kIn; ++i) {
        double v = 0;
        for (int64_t o = 0; o < kOut; ++o) v += double(B[o * kRank + r]) * G[o * kIn + i];
        dA[r * kIn + i] = static_cast<float>(kScale * v);
      }
    for (int64_t o = 0; o < kOut; ++o)
      for (int64_t r = 0; r < kRank; ++r) {
        double v = 0;
        for (int64_t i = 0; i < kIn; ++i) v += G[o * kIn + i] * A[r * kIn + i];
        dB[o * kRank + r] = static_cast<float>(kScale * v);
      }
    for (int64_t t = 0; t < kRows; ++t)
      for (int64_t i = 0; i < kIn; ++i) {
        double v = 0;
        for (int64_t o = 0; o < kOut; ++o) v += double(DY[t * kOut + o]) * Q[o * kIn + i];
        DX[t * kIn + i] = static_cast<float>(v);
      }
    for (int64_t o = 0; o < kOut; ++o) {
      double v = 0;
      for (int64_t t = 0; t < kRows; ++t) v += DY[t * kOut + o];
      db[o] = static_cast<float>(v);
    }
    EXPECT_LT(relative_error(host_f32(g.lora_a), dA), 1e-5);
    EXPECT_LT(relative_error(host_f32(g.lora_b), dB), 1e-5);
    EXPECT_LT(relative_error(host_f32(dx), DX), 1e-5);
    EXPECT_LT(relative_error(host_f32(g.bias), db), 1e-5);
    if (spec.scheme == QuantScheme::Int8) {
      // int8 never clamps: the estimator's gradient is that of x (W + s B A)^T, the plain LoRA
      // projection, by central differences.
      std::vector<float> r = host_f32(dy);
      auto loss = [&] { return weighted_sum(plain.forward(x), r); };
      EXPECT_LT(relative_error(host_f32(g.lora_a), central_differences(plain.lora_a, loss, 1e-2f)), 2e-3);
      EXPECT_LT(relative_error(host_f32(g.lora_b), central_differences(plain.lora_b, loss, 1e-2f)), 2e-3);
    }
    // A trainable W gets G itself.
    Linear gw = g;
    gw.weight = zeros_like(l.weight);
    gw.lora_a = zeros_like(l.lora_a);
    l.backward(dy, x, xa, gw, Tensor(), false);
    std::vector<float> Gf(G.begin(), G.end());
    EXPECT_LT(relative_error(host_f32(gw.weight), Gf), 1e-5);
  }
  // LoRA dropout has nothing to act on.
  const QuantSpec int8{QuantScheme::Int8};
  EXPECT_THROW(random_lora(seed, &int8).forward(random_tensor({kRows, kIn}, DType::F32, Device::cpu(), seed), nullptr,
                                                {0.1f, 1, 0}),
               Error);
}

// A QAT (q4_0) + LoRA job on the CPU: the merged quantized checkpoint it exports gives `tessera
// eval` the eval loss the job logged for its last step (1e-6), so the export is what was trained.
TEST(QatLora, ExportedMergedQuantizedCheckpointReproducesTheJobsEvalLoss) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "qat_lora";
  fs::remove_all(dir);
  const std::string data = TESSERA_TEST_DATA "/jsonl/completion.jsonl";
  const std::string job = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                          "/README.md --set data.eval=" + data +
                          " --set data.format=auto --set data.seq_len=32 --set train.micro_batch_size=1"
                          " --set train.device=cpu --set train.lr=1e-2 --set lora.r=4 --set quant.qat.weights=q4_0"
                          " --set model.init.intermediate_size=192"
                          " --set checkpoint.dir=" + (dir / "ckpt").string() +
                          " --set log.metrics_file=" + (dir / "metrics.jsonl").string() + " --set train.steps=4";
  auto eval = [&](const std::string& model) {
    const CommandResult r = run_tessera("eval --json --device cpu --tokenizer bytes --seq-len 32 --model " + model + " --data " +
                                        data + " 2>/dev/null");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const std::string last = r.output.substr(r.output.rfind('{'));
    return nlohmann::json::parse(last);
  };
  CommandResult r = run_tessera(job + " --set train.stop_after=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("quantization-aware training: q4_0"), std::string::npos) << r.output;
  // The whole eval file, one sequence per batch, evaluated by the trainer after step 4.
  const int64_t sequences = eval((dir / "ckpt/step-2").string())["sequences"];
  ASSERT_GT(sequences, 1);
  r = run_tessera(job + " --set eval.every_steps=4 --set eval.batches=" + std::to_string(sequences));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  double trained = -1;
  std::ifstream metrics(dir / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval_loss") && j["step"] == 4) trained = j["eval_loss"];
  }
  ASSERT_GT(trained, 0) << "no eval_loss at step 4";

  r = run_tessera("export --checkpoint " + (dir / "ckpt/step-4").string() + " --format quantized --dtype fp32 --out " +
                  (dir / "quantized").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double exported = eval((dir / "quantized").string())["loss"];
  EXPECT_NEAR(exported, trained, 1e-6);
  // The unquantized merged model is another one: ten times further than 1e-6 at least (the gap
  // depends on the training text, README.md, which every edit of it moves: 5.5e-5 on 2026-12-02).
  r = run_tessera("export --checkpoint " + (dir / "ckpt/step-4").string() + " --out " + (dir / "merged").string() +
                  " --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(std::abs(eval((dir / "merged").string())["loss"].get<double>() - trained), 1e-5);
  fs::remove_all(dir);
}
