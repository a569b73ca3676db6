// Collectives on host tensors with MPI's non-blocking calls. bf16 and f16 have no MPI type:
// they travel as 16-bit words and are reduced by user-defined ops that compute in fp32.
#include <mpi.h>

#include <vector>

#include "comm/communicator.h"
#include "core/error.h"

namespace tessera {

namespace {

template <float (*Load)(uint16_t), uint16_t (*Store)(float), bool kMax>
void reduce_half(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    float x = Load(a[i]), y = Load(b[i]);
    b[i] = Store(kMax ? std::max(x, y) : x + y);
  }
}

struct HalfOps {
  MPI_Op bf16_sum, bf16_max, f16_sum, f16_max;
  HalfOps() {
    MPI_Op_create(&reduce_half<bf16_bits_to_f32, f32_to_bf16_bits, false>, 1, &bf16_sum);
    MPI_Op_create(&reduce_half<bf16_bits_to_f32, f32_to_bf16_bits, true>, 1, &bf16_max);
    MPI_Op_create(&reduce_half<f16_bits_to_f32, f32_to_f16_bits, false>, 1, &f16_sum);
    MPI_Op_create(&reduce_half<f16_bits_to_f32, f32_to_f16_bits, true>, 1, &f16_max);
  }
};

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return MPI_FLOAT;
    case DType::BF16:
    case DType::F16: return MPI_UINT16_T;
    case DType::I64: return MPI_INT64_T;
    case DType::I32: return MPI_INT32_T;
    case DType::I8: return MPI_INT8_T;
    case DType::U8: return MPI_UINT8_T;
  }
  fail("MPI: unsupported dtype {}", dtype_name(dtype));
}

MPI_Op mpi_op(DType dtype, ReduceOp op) {
  static HalfOps half;  // created after MPI_Init, on first use
  const bool max = op == ReduceOp::Max;
  if (dtype == DType::BF16) return max ? half.bf16_max : half.bf16_sum;
  if (dtype == DType::F16) return max ? half.f16_max : half.f16_sum;
  return max ? MPI_MAX : MPI_SUM;
}

// Avg is a sum followed by this division, done once the data has arrived.
void divide(const Tensor& t, int by) {
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32: {
      float* p = t.data_as<float>();
      for (int64_t i = 0; i < n; ++i) p[i] /= static_cast<float>(by);
      return;
    }
    case DType::BF16: {
      uint16_t* p = t.data_as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16_bits(bf16_bits_to_f32(p[i]) / by);
      return;
    }
    case DType::F16: {
      uint16_t* p = t.data_as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_f16_bits(f16_bits_to_f32(p[i]) / by);
      return;
    }
    default: fail("all_reduce/reduce_scatter: Avg needs a floating tensor, got {}", t.str());
  }
}

void check_host(const char* op, const Tensor& t) {
  TS_CHECK(t.device().is_cpu(), "MPI {}: tensor {} is not on the host", op, t.str());
}

int as_count(int64_t n) {
  TS_CHECK(n <= INT32_MAX, "MPI: {} elements exceed one message's limit", n);
  return static_cast<int>(n);
}

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  fail("{} failed: {}", what, std::string(text, len));
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Work all_gather(const Tensor& out, const Tensor& in) override {
    check_host("all_gather", out);
    check_host("all_gather", in);
    TS_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size_,
             "all_gather: output {} must hold {} x input {}", out.str(), size_, in.str());
    MPI_Request request;
    check_mpi(MPI_Iallgather(in.data(), as_count(in.numel()), mpi_type(in.dtype()), out.data(),
                             as_count(in.numel()), mpi_type(in.dtype()), comm_, &request),
              "MPI_Iallgather");
    return finish(request, nullptr, {out, in});
  }

  Work reduce_scatter(const Tensor& out, const Tensor& in, ReduceOp op) override {
    check_host("reduce_scatter", out);
    check_host("reduce_scatter", in);
    TS_CHECK(out.dtype() == in.dtype() && in.numel() == out.numel() * size_,
             "reduce_scatter: input {} must hold {} x output {}", in.str(), size_, out.str());
    MPI_Request request;
    check_mpi(MPI_Ireduce_scatter_block(in.data(), out.data(), as_count(out.numel()), mpi_type(in.dtype()),
                                        mpi_op(in.dtype(), op), comm_, &request),
              "MPI_Ireduce_scatter_block");
    return finish(request, op == ReduceOp::Avg ? &out : nullptr, {out, in});
  }

  Work all_reduce(const Tensor& t, ReduceOp op) override {
    check_host("all_reduce", t);
    MPI_Request request;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.data(), as_count(t.numel()), mpi_type(t.dtype()),
                             mpi_op(t.dtype(), op), comm_, &request),
              "MPI_Iallreduce");
    return finish(request, op == ReduceOp::Avg ? &t : nullptr, {t});
  }

  Work broadcast(const Tensor& t, int root) override {
    check_host("broadcast", t);
    TS_CHECK(root >= 0 && root < size_, "broadcast: root {} outside the world of {}", root, size_);
    MPI_Request request;
    check_mpi(MPI_Ibcast(t.data(), as_count(t.numel()), mpi_type(t.dtype()), root, comm_, &request),
              "MPI_Ibcast");
    return finish(request, nullptr, {t});
  }

  void barrier() override { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

 private:
  // The Work waits for the request, then divides by the world size for Avg. It holds the buffers
  // until then, so a caller may drop its references as soon as the collective is started.
  Work finish(MPI_Request request, const Tensor* average, std::vector<Tensor> buffers) {
    Tensor target = average ? *average : Tensor();
    const int size = size_;
    auto wait = [request, target, size, buffers = std::move(buffers)]() mutable {
      check_mpi(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait");
      if (target.defined()) divide(target, size);
      buffers.clear();
    };
    return Work(std::move(wait), nullptr);
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const World&) {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
}

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_SELF); }

std::unique_ptr<Communicator> make_communicator(const World& world, Device device) {
  if (device.is_cuda()) return make_nccl_communicator(world);
  return make_mpi_communicator(world);
}

}  // namespace tessera
