// Collectives on GPU tensors with NCCL, bootstrapped through MPI (rank 0 makes the unique id
// and broadcasts it). Each collective runs on the communicator's own high-priority stream,
// ordered after the work already queued on the caller's current stream.
#include "comm/communicator.h"
#include "core/error.h"

#if TESSERA_WITH_CUDA
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <vector>

#include "core/memory.h"
#include "core/stream.h"

namespace tessera {

namespace {

#define TS_NCCL_CHECK(call)                                                                       \
  do {                                                                                            \
    ncclResult_t ts_res_ = (call);                                                                \
    if (ts_res_ != ncclSuccess) ::tessera::fail("NCCL error in {}: {}", #call, ncclGetErrorString(ts_res_)); \
  } while (0)

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I64: return ncclInt64;
    case DType::I32: return ncclInt32;
    case DType::I8: return ncclInt8;
    case DType::U8: return ncclUint8;
  }
  fail("NCCL: unsupported dtype {}", dtype_name(dtype));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(const World& world) : rank_(world.rank), size_(world.size), device_(world.device) {
    TS_CHECK(device_.is_cuda(), "NCCL needs a GPU, but rank {} has none ({})", rank_, cuda_unavailable_reason());
    ncclUniqueId id;
    if (rank_ == 0) TS_NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    set_device(device_.index);
    TS_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
    stream_ = create_stream(device_.index, /*high_priority=*/true);
    // A stalled job (watchdog) or a failing rank (abort_world) aborts the communicator first, so
    // that a collective waiting on a dead peer returns instead of holding this rank's GPU.
    abort_hook_ = add_abort_hook([this] {
      aborted_ = true;
      ncclCommAbort(comm_);
    });
  }

  ~NcclCommunicator() override {
    remove_abort_hook(abort_hook_);
    if (aborted_) return;  // the process is going down; the aborted communicator is gone already
    synchronize_stream(stream_);
    ncclCommDestroy(comm_);
    destroy_stream(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Work all_gather(const Tensor& out, const Tensor& in) override {
    check("all_gather", out, in);
    TS_CHECK(out.numel() == in.numel() * size_, "all_gather: output {} must hold {} x input {}", out.str(), size_,
             in.str());
    return launch({out, in}, [&] {
      TS_NCCL_CHECK(ncclAllGather(in.data(), out.data(), in.numel(), nccl_type(in.dtype()), comm_, stream_));
    });
  }

  Work reduce_scatter(const Tensor& out, const Tensor& in, ReduceOp op) override {
    check("reduce_scatter", out, in);
    TS_CHECK(in.numel() == out.numel() * size_, "reduce_scatter: input {} must hold {} x output {}", in.str(),
             size_, out.str());
    return launch({out, in}, [&] {
      TS_NCCL_CHECK(ncclReduceScatter(in.data(), out.data(), out.numel(), nccl_type(in.dtype()), nccl_op(op), comm_,
                                      stream_));
    });
  }

  Work reduce_scatter_many(const std::vector<Tensor>& outs, const std::vector<Tensor>& ins, ReduceOp op) override {
    std::vector<Tensor> buffers;
    for (size_t i = 0; i < outs.size(); ++i) {
      check("reduce_scatter_many", outs[i], ins[i]);
      TS_CHECK(ins[i].numel() == outs[i].numel() * size_, "reduce_scatter_many: input {} must hold {} x output {}",
               ins[i].str(), size_, outs[i].str());
      buffers.push_back(outs[i]);
      buffers.push_back(ins[i]);
    }
    return launch(buffers, [&] {
      TS_NCCL_CHECK(ncclGroupStart());
      for (size_t i = 0; i < outs.size(); ++i)
        TS_NCCL_CHECK(ncclReduceScatter(ins[i].data(), outs[i].data(), outs[i].numel(), nccl_type(ins[i].dtype()),
                                        nccl_op(op), comm_, stream_));
      TS_NCCL_CHECK(ncclGroupEnd());
    });
  }

  Work all_reduce(const Tensor& t, ReduceOp op) override {
    check("all_reduce", t, t);
    return launch({t}, [&] {
      TS_NCCL_CHECK(ncclAllReduce(t.data(), t.data(), t.numel(), nccl_type(t.dtype()), nccl_op(op), comm_, stream_));
    });
  }

  Work broadcast(const Tensor& t, int root) override {
    check("broadcast", t, t);
    TS_CHECK(root >= 0 && root < size_, "broadcast: root {} outside the world of {}", root, size_);
    return launch({t}, [&] {
      TS_NCCL_CHECK(ncclBroadcast(t.data(), t.data(), t.numel(), nccl_type(t.dtype()), root, comm_, stream_));
    });
  }

  void barrier() override {
    Tensor one = Tensor::empty({1}, DType::F32, device_);
    all_reduce(one, ReduceOp::Sum).synchronize();
  }

 private:
  void check(const char* op, const Tensor& a, const Tensor& b) const {
    TS_CHECK(a.device() == device_ && b.device() == device_, "NCCL {}: tensors must be on {} ({}, {})", op,
             device_.str(), a.str(), b.str());
    TS_CHECK(a.dtype() == b.dtype(), "NCCL {}: dtypes differ ({}, {})", op, a.str(), b.str());
  }

  // Orders the collective after the caller's queued work, keeps its buffers alive in the
  // allocator until the communication stream is past it, and hands back its completion.
  template <typename Fn>
  Work launch(const std::vector<Tensor>& buffers, Fn&& enqueue) {
    Stream caller = current_stream(device_.index);
    Event ready;
    ready.record(caller);
    ready.wait_on(stream_);
    for (const Tensor& t : buffers) t.record_stream(stream_);
    enqueue();
    auto done = std::make_shared<Event>();
    done->record(stream_);
    const int device = device_.index;
    return Work([done, device] { done->wait_on(current_stream(device)); }, [done] { done->synchronize(); });
  }

  int rank_, size_;
  Device device_;
  ncclComm_t comm_ = nullptr;
  Stream stream_ = nullptr;
  int abort_hook_ = -1;
  std::atomic<bool> aborted_{false};
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const World& world) {
  return std::make_unique<NcclCommunicator>(world);
}

}  // namespace tessera

#else

namespace tessera {
std::unique_ptr<Communicator> make_nccl_communicator(const World&) {
  fail("NCCL communicator: this build has no CUDA backend");
}
}  // namespace tessera

#endif
