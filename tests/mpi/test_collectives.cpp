// MPI collectives on host tensors, run by ctest under mpirun with 2 and 3 ranks.
#include <gtest/gtest.h>

#include "collective_checks.h"
#include "core/error.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(MpiCollectives, EveryOpEveryDtypeUnevenSizes) {
  const World& world = World::get();
  ASSERT_GE(world.size, 2) << "run under mpirun -np 2 or more";
  auto comm = make_mpi_communicator(world);
  check_every_collective(*comm, Device::cpu());
}

TEST(MpiCollectives, ShardLayoutPadsTheLastRanks) {
  ShardLayout layout(10, 3);
  EXPECT_EQ(layout.shard, 4);
  EXPECT_EQ(layout.padded(), 12);
  EXPECT_EQ(layout.owned(0), 4);
  EXPECT_EQ(layout.owned(2), 2);
  ShardLayout tiny(1, 3);
  EXPECT_EQ(tiny.owned(1), 0);
  EXPECT_EQ(tiny.begin(2), 1);
}

TEST(MpiCollectives, NonBlockingWorkOverlapsHostWork) {
  const World& world = World::get();
  auto comm = make_mpi_communicator(world);
  Tensor t = Tensor::from_vector<float>(std::vector<float>(1 << 16, float(world.rank + 1)), {1 << 16}, DType::F32);
  Work work = comm->all_reduce(t, ReduceOp::Sum);
  double busy = 0;
  for (int i = 0; i < 1000; ++i) busy += i;  // host work while the reduction is in flight
  work.wait();
  EXPECT_EQ(busy, 499500);
  EXPECT_EQ(t.to_vector<float>()[12345], world.size * (world.size + 1) / 2.0f);
}

TEST(MpiCollectives, WrongSizesAreErrors) {
  auto comm = make_mpi_communicator(World::get());
  Tensor in = Tensor::empty({4}, DType::F32), out = Tensor::empty({5}, DType::F32);
  EXPECT_THROW((void)comm->all_gather(out, in), Error);
  EXPECT_THROW((void)comm->reduce_scatter(in, out, ReduceOp::Sum), Error);
  EXPECT_THROW((void)comm->broadcast(in, 99), Error);
}
