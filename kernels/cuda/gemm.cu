// gemm through cuBLASLt: fp32 accumulation, bias fused into the epilogue, heuristics cached per
// problem. Row-major C = op(A) op(B) is computed as column-major C^T = op(B)^T op(A)^T, so B
// goes in cuBLAS's first slot and A in its second, with the transposes kept.
#include <cublasLt.h>
#include <cublas_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/memory.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/small_m.h"

namespace tessera::cuda {

namespace {

#define TS_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                          \
    cublasStatus_t ts_status_ = (call);                                                         \
    if (ts_status_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::tessera::fail_call("cuBLASLt", #call, __FILE__, __LINE__, cublasGetStatusString(ts_status_)); \
  } while (0)

constexpr size_t kWorkspaceBytes = 64 << 20;

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: throw Error("gemm: unsupported dtype " + std::string(dtype_name(dtype)));
  }
}

using Alignments = std::tuple<uint32_t, uint32_t, uint32_t>;  // bytes, in cuBLAS's A, B, C order
// Everything the chosen algorithm depends on, pointer alignment included.
using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, bool, bool, DType, DType, bool, Alignments>;

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

class Gemm {
 public:
  static Gemm& get() {
    static auto* instance = new Gemm();  // lives to the end: plans are reused across the run
    return *instance;
  }

  void run(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
           const Tensor& bias) {
    const int device = c.device().index;
    std::lock_guard lock(mu_);
    auto& state = device_state(device);
    const Alignments align{alignment_of(b), alignment_of(a), alignment_of(c)};  // cuBLAS's A, B, C slots
    PlanKey key{device, s.m, s.n, s.k, s.ldc, s.trans_a, s.trans_b, a.dtype(), c.dtype(), bias.defined(), align};
    auto it = plans_.find(key);
    if (it == plans_.end()) it = plans_.emplace(key, make_plan(state, s, a.dtype(), c.dtype(), bias.defined(), align)).first;
    Plan& plan = it->second;
    if (bias.defined()) {
      const void* bias_ptr = bias.data();
      TS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr,
                                                     sizeof(bias_ptr)));
    }
    cudaStream_t stream = stream_of(c);
    state.workspace_in_use_on(stream);
    TS_CUBLAS_CHECK(cublasLtMatmul(state.handle, plan.desc, &alpha, b.data(), plan.a, a.data(), plan.b, &beta,
                                   c.data(), plan.c, c.data(), plan.c, &plan.algo, state.workspace.get(),
                                   kWorkspaceBytes, stream));
  }

 private:
  struct DeviceState {
    cublasLtHandle_t handle = nullptr;
    std::shared_ptr<void> workspace;
    void workspace_in_use_on(cudaStream_t stream) { record_stream(workspace, stream); }
  };

  // The largest power of two (up to 256) dividing the address. cuBLASLt's heuristics assume
  // 256-byte operands unless told otherwise, and a view (narrow, flat_slice) may be less aligned.
  static uint32_t alignment_of(const Tensor& t) {
    const auto p = reinterpret_cast<uintptr_t>(t.data());
    uint32_t a = 256;
    while (a > 1 && p % a != 0) a /= 2;
    return a;
  }

  DeviceState& device_state(int device) {
    auto& state = states_[device];
    if (!state.handle) {
      TS_CUBLAS_CHECK(cublasLtCreate(&state.handle));
      state.workspace = allocate(kWorkspaceBytes, Device::cuda(device));
    }
    return state;
  }

  Plan make_plan(DeviceState& state, const GemmShape& s, DType ab, DType cd, bool with_bias, const Alignments& align) {
    Plan plan;
    const cublasOperation_t op_first = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;   // B's slot
    const cublasOperation_t op_second = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // A's slot
    TS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    TS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
    TS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
    if (with_bias) {
      cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      cudaDataType_t bias_type = cuda_type(cd);
      TS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
      TS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                     sizeof(bias_type)));
    }
    // Column-major shapes as stored: B is (ldb x rows_b), A is (lda x rows_a), C^T is (n x m) with
    // columns ldc apart.
    const uint64_t rows_b = s.trans_b ? s.n : s.k, rows_a = s.trans_a ? s.k : s.m;
    TS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, cuda_type(ab), s.ldb, rows_b, s.ldb));
    TS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, cuda_type(ab), s.lda, rows_a, s.lda));
    TS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, cuda_type(cd), s.n, s.m, s.ldc ? s.ldc : s.n));

    cublasLtMatmulPreference_t pref;
    TS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t workspace = kWorkspaceBytes;
    TS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                         sizeof(workspace)));
    const auto [align_a, align_b, align_c] = align;
    for (auto [attr, bytes] : {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
                               std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
                               std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
                               std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}})
      TS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    TS_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(state.handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1,
                                                   &result, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (found == 0)
      throw Error("gemm: cuBLASLt has no algorithm for M=" + std::to_string(s.m) + " N=" + std::to_string(s.n) +
                  " K=" + std::to_string(s.k) + " " + std::string(dtype_name(ab)) + " -> " + std::string(dtype_name(cd)));
    plan.algo = result.algo;
    return plan;
  }

  std::mutex mu_;
  std::map<int, DeviceState> states_;
  std::map<PlanKey, Plan> plans_;
};

}  // namespace

void gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
          const Tensor& bias) {
  if (small_m_gemm(c, a, b, s, alpha, beta, bias)) return;  // a few rows against a weight: decode steps
  Gemm::get().run(c, a, b, s, alpha, beta, bias);
}

}  // namespace tessera::cuda
