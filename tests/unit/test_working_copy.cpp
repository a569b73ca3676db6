// Parameter offload to NVMe: the working copy's swap file streams slices of any size through the
// swap's pinned budget in pieces, and reads started ahead are used when they fit, never when stale.
#include <gtest/gtest.h>

#include <vector>

#include "core/memory.h"
#include "swap_dir.h"
#include "zero/working_copy.h"

using namespace tessera;
using tessera::testing_util::SwapDir;

namespace {

constexpr size_t kPool = 4 * 16384;  // units_in_flight 2 + 2 buffers of 16 KiB: 4096 floats a piece

offload::NvmeSwap small_swap(const SwapDir& dir) {
  offload::NvmeSwap swap;
  swap.io.path = dir.path.string();
  swap.io.block_bytes = 8192;
  swap.pinned_bytes = kPool;
  return swap;
}

float value(size_t unit, int64_t i, float shift) { return static_cast<float>(unit * 1000000 + i) + shift; }

// Writes the unit's values, from the CPU (`host`) or where device kernels would (here the CPU too).
void write_unit(WorkingCopy& low, size_t unit, bool host, float shift) {
  const Tensor t = low.target(unit, host);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = value(unit, i, shift);
  low.commit(unit);
}

void expect_unit(WorkingCopy& low, size_t unit, int64_t size, float shift) {
  const Tensor t = low.on_device(unit);
  ASSERT_EQ(t.numel(), size);
  int64_t wrong = 0;
  for (int64_t i = 0; i < size; ++i) wrong += t.data_as<float>()[i] != value(unit, i, shift);
  EXPECT_EQ(wrong, 0) << "unit " << unit << " (shift " << shift << ")";
}

size_t host_bytes() { return memory_stats(Device::cpu()).allocated; }

}  // namespace

TEST(WorkingCopy, SwapFileStreamsThroughThePinnedBudget) {
  SwapDir dir;
  const std::vector<int64_t> sizes{100000, 3000, 70001};  // 25, 1 and 18 pieces
  const size_t base = host_bytes();
  std::vector<WorkingCopy::Slot> slots;
  for (int64_t n : sizes) slots.push_back({n, DType::F32});
  WorkingCopy low(slots, Device::cpu(), WorkingCopy::Home::nvme, small_swap(dir));
  // The pool (and, with a GPU, the page its start is aligned to): nothing sized by the units.
  EXPECT_GE(host_bytes() - base, kPool);
  EXPECT_LE(host_bytes() - base, kPool + 4096);
  const size_t pool = host_bytes() - base;

  write_unit(low, 0, /*host=*/true, 0);
  write_unit(low, 1, /*host=*/false, 0);
  write_unit(low, 2, /*host=*/true, 0);
  low.read_ahead(2);
  expect_unit(low, 0, sizes[0], 0);  // another unit's read ahead waits for its turn
  expect_unit(low, 2, sizes[2], 0);
  low.read_ahead(1);
  write_unit(low, 1, /*host=*/true, 0.5f);  // what was read ahead is stale now
  expect_unit(low, 1, sizes[1], 0.5f);
  low.read_ahead(0);  // takes every buffer but one
  low.read_ahead(2);  // finds none to spare
  expect_unit(low, 2, sizes[2], 0);
  expect_unit(low, 0, sizes[0], 0);
  // Besides the pool only the slice the CPU writes for the disk stays: ordinary memory, one unit.
  EXPECT_EQ(host_bytes() - base, pool + sizes[0] * sizeof(float));
}
