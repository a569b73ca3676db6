// Collective checks shared by the MPI (host) and NCCL (GPU) tests: every op, every dtype, and
// sizes that do not divide evenly over the ranks (ShardLayout's padding rule).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "comm/communicator.h"
#include "core/stream.h"
#include "kernels/ops.h"

namespace tessera::testing_util {

// Small non-negative integers are exact in every dtype (bf16 and u8 included), and so are their
// sums over a few ranks, so results compare exactly.
inline double value_at(int rank, int64_t i) { return static_cast<double>((rank * 7 + i * 3) % 11); }

// Sum and Max are exact; Avg rounds once in the tensor's dtype.
inline double tolerance(ReduceOp op, DType dtype, double want) {
  if (op != ReduceOp::Avg) return 0.0;
  return (dtype == DType::F32 ? 1e-6 : 1e-2) * std::max(1.0, std::abs(want));
}

inline Tensor tensor_of(const std::vector<double>& values, DType dtype, Device device) {
  const int64_t n = static_cast<int64_t>(values.size());
  Tensor host = Tensor::empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    switch (dtype) {
      case DType::F32: host.data_as<float>()[i] = static_cast<float>(v); break;
      case DType::BF16: host.data_as<uint16_t>()[i] = f32_to_bf16_bits(static_cast<float>(v)); break;
      case DType::F16: host.data_as<uint16_t>()[i] = f32_to_f16_bits(static_cast<float>(v)); break;
      case DType::I64: host.data_as<int64_t>()[i] = static_cast<int64_t>(v); break;
      case DType::I32: host.data_as<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::I8: host.data_as<int8_t>()[i] = static_cast<int8_t>(v); break;
      case DType::U8: host.data_as<uint8_t>()[i] = static_cast<uint8_t>(v); break;
    }
  }
  return host.to(device);
}

inline std::vector<double> values_of(const Tensor& t) {
  Tensor host = t.to(Device::cpu());
  std::vector<double> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DType::F32: out[i] = host.data_as<float>()[i]; break;
      case DType::BF16: out[i] = bf16_bits_to_f32(host.data_as<uint16_t>()[i]); break;
      case DType::F16: out[i] = f16_bits_to_f32(host.data_as<uint16_t>()[i]); break;
      case DType::I64: out[i] = static_cast<double>(host.data_as<int64_t>()[i]); break;
      case DType::I32: out[i] = host.data_as<int32_t>()[i]; break;
      case DType::I8: out[i] = host.data_as<int8_t>()[i]; break;
      case DType::U8: out[i] = host.data_as<uint8_t>()[i]; break;
    }
  }
  return out;
}

// This rank's shard of a flat buffer of `numel` values, zero-padded to layout.shard.
inline std::vector<double> shard_values(const ShardLayout& layout, int rank) {
  std::vector<double> shard(layout.shard, 0.0);
  for (int64_t i = layout.begin(rank); i < layout.end(rank); ++i) shard[i - layout.begin(rank)] = value_at(0, i);
  return shard;
}

inline void check_all_gather(Communicator& comm, Device device, DType dtype, int64_t numel) {
  ShardLayout layout(numel, comm.size());
  Tensor in = tensor_of(shard_values(layout, comm.rank()), dtype, device);
  Tensor out = Tensor::empty({layout.padded()}, dtype, device);
  comm.all_gather(out, in).synchronize();
  std::vector<double> got = values_of(out);
  for (int64_t i = 0; i < layout.padded(); ++i)
    ASSERT_EQ(got[i], i < numel ? value_at(0, i) : 0.0) << dtype_name(dtype) << " element " << i;
}

inline void check_reduce_scatter(Communicator& comm, Device device, DType dtype, int64_t numel, ReduceOp op) {
  ShardLayout layout(numel, comm.size());
  std::vector<double> mine(layout.padded(), 0.0);
  for (int64_t i = 0; i < numel; ++i) mine[i] = value_at(comm.rank(), i);
  Tensor in = tensor_of(mine, dtype, device);
  Tensor out = Tensor::empty({layout.shard}, dtype, device);
  comm.reduce_scatter(out, in, op).synchronize();
  std::vector<double> got = values_of(out);
  for (int64_t j = 0; j < layout.shard; ++j) {
    const int64_t i = layout.begin(comm.rank()) + j;
    double want = 0;
    if (i < numel) {
      want = 0.0;
      for (int r = 0; r < comm.size(); ++r)
        want = op == ReduceOp::Max ? std::max(want, value_at(r, i)) : want + value_at(r, i);
      if (op == ReduceOp::Avg) want /= comm.size();
    }
    ASSERT_NEAR(got[j], want, tolerance(op, dtype, want))
        << dtype_name(dtype) << " element " << i;
  }
}

inline void check_all_reduce(Communicator& comm, Device device, DType dtype, int64_t numel, ReduceOp op) {
  std::vector<double> mine(numel);
  for (int64_t i = 0; i < numel; ++i) mine[i] = value_at(comm.rank(), i);
  Tensor t = tensor_of(mine, dtype, device);
  comm.all_reduce(t, op).synchronize();
  std::vector<double> got = values_of(t);
  for (int64_t i = 0; i < numel; ++i) {
    double want = 0.0;
    for (int r = 0; r < comm.size(); ++r)
      want = op == ReduceOp::Max ? std::max(want, value_at(r, i)) : want + value_at(r, i);
    if (op == ReduceOp::Avg) want /= comm.size();
    ASSERT_NEAR(got[i], want, tolerance(op, dtype, want))
        << dtype_name(dtype) << " element " << i;
  }
}

inline void check_broadcast(Communicator& comm, Device device, DType dtype, int64_t numel) {
  const int root = comm.size() - 1;
  std::vector<double> mine(numel);
  for (int64_t i = 0; i < numel; ++i) mine[i] = value_at(comm.rank(), i);
  Tensor t = tensor_of(mine, dtype, device);
  comm.broadcast(t, root).synchronize();
  std::vector<double> got = values_of(t);
  for (int64_t i = 0; i < numel; ++i) ASSERT_EQ(got[i], value_at(root, i)) << dtype_name(dtype) << " element " << i;
}

inline void check_every_collective(Communicator& comm, Device device) {
  const DType all[] = {DType::F32, DType::BF16, DType::F16, DType::I64, DType::I32, DType::I8, DType::U8};
  for (int64_t numel : {1, 10, 1000, 100003}) {  // 10 over 3 ranks: shards 4, 4, 2 (+2 padding)
    SCOPED_TRACE(::testing::Message() << "numel " << numel << " over " << comm.size() << " ranks");
    for (DType dtype : all) {
      check_all_gather(comm, device, dtype, numel);
      check_broadcast(comm, device, dtype, numel);
      check_reduce_scatter(comm, device, dtype, numel, ReduceOp::Sum);
      check_reduce_scatter(comm, device, dtype, numel, ReduceOp::Max);
      check_all_reduce(comm, device, dtype, numel, ReduceOp::Sum);
      check_all_reduce(comm, device, dtype, numel, ReduceOp::Max);
      if (is_floating(dtype)) {
        check_reduce_scatter(comm, device, dtype, numel, ReduceOp::Avg);
        check_all_reduce(comm, device, dtype, numel, ReduceOp::Avg);
      }
    }
  }
  comm.barrier();
}

}  // namespace tessera::testing_util
