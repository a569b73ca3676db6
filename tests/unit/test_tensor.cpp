#include <gtest/gtest.h>

#include "core/error.h"
#include "core/memory.h"
#include "core/tensor.h"

using namespace tessera;

TEST(Tensor, ShapesAndViewsShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3}, DType::F32);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.size(-1), 3);
  EXPECT_EQ(t.str(), "f32[2, 3] cpu");
  Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  Tensor row = t.narrow(1, 1);
  EXPECT_EQ(row.to_vector<float>(), (std::vector<float>{3, 4, 5}));
  Tensor window = t.flat_slice(2, 3);
  window.data_as<float>()[0] = 42;
  EXPECT_EQ(t.to_vector<float>()[2], 42);
  EXPECT_EQ(row.storage(), t.storage());
}

TEST(Tensor, BadShapesAndRangesAreErrors) {
  Tensor t = Tensor::empty({4, 5}, DType::BF16);
  EXPECT_THROW(t.view({3, 7}), Error);
  EXPECT_THROW(t.view({-1, -1}), Error);
  EXPECT_THROW(t.narrow(3, 2), Error);
  EXPECT_THROW(t.flat_slice(18, 3), Error);
  EXPECT_THROW(t.size(2), Error);
  EXPECT_THROW(Tensor::empty({-1}, DType::F32), Error);
  EXPECT_THROW((Tensor::from_vector<float>({1, 2}, {3}, DType::F32)), Error);
  EXPECT_THROW((Tensor::from_vector<float>({1, 2}, {2}, DType::BF16)), Error);
  try {
    t.view({3, 7});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cannot view bf16[4, 5] cpu as [3, 7]");
  }
}

TEST(Tensor, HostMemoryIsCounted) {
  const size_t before = memory_stats(Device::cpu()).allocated;
  {
    Tensor t = Tensor::empty({1 << 20}, DType::F32);
    EXPECT_GE(memory_stats(Device::cpu()).allocated, before + (4u << 20));
    EXPECT_GE(memory_stats(Device::cpu()).peak_allocated, before + (4u << 20));
  }
  EXPECT_EQ(memory_stats(Device::cpu()).allocated, before);
}

TEST(Tensor, WrapKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<int32_t>>(std::vector<int32_t>{7, 8, 9});
  Tensor t = Tensor::wrap(owner->data(), {3}, DType::I32, Device::cpu(), owner);
  std::weak_ptr<std::vector<int32_t>> watch = owner;
  owner.reset();
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{7, 8, 9}));
  t = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Device, Parse) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_THROW(Device::parse("cuda:x"), Error);
  EXPECT_THROW(Device::parse("tpu"), Error);
}
