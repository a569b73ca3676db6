// NCCL collectives on GPU tensors. ctest runs them with one rank (skipped without a GPU);
// scripts/device-tests.sh runs them with one rank per GPU on a multi-GPU machine.
#include <gtest/gtest.h>

#include "collective_checks.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(NcclCollectives, EveryOpEveryDtypeUnevenSizes) {
  const World& world = World::get();
  if (!world.device.is_cuda()) GTEST_SKIP() << cuda_unavailable_reason();
  auto comm = make_nccl_communicator(world);
  check_every_collective(*comm, world.device);
}

TEST(NcclCollectives, CollectiveRunsAfterQueuedComputeAndBeforeLaterCompute) {
  const World& world = World::get();
  if (!world.device.is_cuda()) GTEST_SKIP() << cuda_unavailable_reason();
  auto comm = make_nccl_communicator(world);
  const int64_t n = 1 << 22;
  Tensor t = Tensor::empty({n}, DType::F32, world.device);
  ops::fill(t, 1.0f);                     // queued on the compute stream
  ops::scale(t, t, float(world.rank + 1));  // the collective must see this
  Work work = comm->all_reduce(t, ReduceOp::Sum);
  work.wait();                            // compute stream waits; the host does not
  ops::scale(t, t, 2.0f);                 // must see the reduced values
  const float want = 2.0f * world.size * (world.size + 1) / 2.0f;
  auto got = host_f32(t);
  EXPECT_EQ(got.front(), want);
  EXPECT_EQ(got.back(), want);
}
