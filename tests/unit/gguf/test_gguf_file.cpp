// The GGUF writer against hand-assembled bytes, round trips through the reader, and the reader on
// truncated, bit-flipped and crafted hostile files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "error_text.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::gguf;

namespace {

std::string temp_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::temp_directory_path() / ("tessera_gguf_" + std::string(info->name()) + "_" +
                                                    std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

std::string open_error(const std::string& path) {
  return testing_util::error_of([&] { File::open(path); });
}

// A small file with metadata of several kinds and three tensors of different types.
std::string write_sample(const std::string& path) {
  Metadata m;
  m.emplace_back("general.architecture", Value::string("llama"));
  m.emplace_back("llama.block_count", Value::u32(2));
  m.emplace_back("llama.rope.freq_base", Value::f32(10000.0f));
  m.emplace_back("tokenizer.ggml.tokens", Value::strings({"a", "", "c d"}));
  m.emplace_back("tokenizer.ggml.token_type", Value::i32s({1, 3, -4}));
  m.emplace_back("tokenizer.ggml.add_bos_token", Value::boolean(true));
  m.emplace_back("big", Value::u64(1ull << 40));
  Writer w(path, m,
           {{"a", TensorType::F32, {2, 3}}, {"b", TensorType::Q8_0, {1, 32}}, {"c", TensorType::F16, {5}}});
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::string b(34, '\x07');
  std::string c(10, '\x01');
  w.write("a", a.data(), 24);
  w.write("b", b.data(), b.size());
  w.write("c", c.data(), c.size());
  w.finish();
  return read_bytes(path);
}

}  // namespace

TEST(GgufWriter, BytesOfAMinimalFile) {
  const std::string path = temp_path("min.gguf");
  Metadata m;
  m.emplace_back("k", Value::u32(7));
  Writer w(path, m, {{"t", TensorType::F32, {2}}});
  const float data[2] = {1.5f, -2.0f};
  w.write("t", data, 8);
  w.finish();

  std::string want;
  put<uint32_t>(want, 0x46554747);  // "GGUF"
  put<uint32_t>(want, 3);
  put<uint64_t>(want, 1);  // tensors
  put<uint64_t>(want, 1);  // metadata
  put_str(want, "k");
  put<uint32_t>(want, 4);  // u32
  put<uint32_t>(want, 7);
  put_str(want, "t");
  put<uint32_t>(want, 1);  // dims
  put<uint64_t>(want, 2);
  put<uint32_t>(want, 0);  // f32
  put<uint64_t>(want, 0);  // offset
  ASSERT_EQ(want.size(), 74u);
  want.append(96 - want.size(), '\0');  // the header padded to the 32-byte alignment
  want.append(reinterpret_cast<const char*>(data), 8);
  want.append(24, '\0');  // the tensor padded too
  EXPECT_EQ(read_bytes(path), want);
  EXPECT_EQ(want.substr(0, 4), "GGUF");
}

TEST(GgufWriter, RoundTripsThroughTheReader) {
  const std::string path = temp_path("sample.gguf");
  write_sample(path);
  const File f = File::open(path);
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), 7u);
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");
  EXPECT_EQ(f.at("general.architecture").as_string(), "llama");
  EXPECT_EQ(f.at("llama.block_count").as_int(), 2);
  EXPECT_EQ(f.at("llama.rope.freq_base").as_float(), 10000.0);
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").as_strings(), (std::vector<std::string>{"a", "", "c d"}));
  EXPECT_EQ(f.at("tokenizer.ggml.token_type").as_ints(), (std::vector<int64_t>{1, 3, -4}));
  EXPECT_TRUE(f.at("tokenizer.ggml.add_bos_token").as_bool());
  EXPECT_EQ(f.at("big").as_int(), 1ll << 40);
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_THROW(f.at("llama.block_count").as_string(), Error);

  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorInfo& a = f.tensor("a");
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  EXPECT_EQ(a.type, TensorType::F32);
  EXPECT_EQ(a.offset, 0u);
  const TensorInfo& b = f.tensor("b");
  EXPECT_EQ(b.offset, 32u);  // 24 bytes padded to 32
  EXPECT_EQ(b.bytes, 34u);
  EXPECT_EQ(f.tensor("c").offset, 96u);
  const Tensor data = f.data(a);
  EXPECT_EQ(data.dtype(), DType::U8);
  float back[6];
  std::memcpy(back, data.data(), 24);
  EXPECT_EQ(back[5], 6.0f);
  EXPECT_EQ(f.data(b).data_as<uint8_t>()[33], 7);
}

TEST(GgufWriter, RefusesToOverwriteAndLeavesNothingHalfWritten) {
  const std::string path = temp_path("x.gguf");
  write_bytes(path, "keep");
  try {
    Writer w(path, {}, {});
    FAIL() << "overwrote an existing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exists (nothing was overwritten)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(path), "keep");

  const std::string fresh = temp_path("y.gguf");
  {
    Writer w(fresh, {}, {{"t", TensorType::F32, {4}}});
    const float v[3] = {1, 2, 3};
    EXPECT_THROW(w.write("t", v, 12), Error);  // 12 bytes where 16 are declared
    EXPECT_THROW(w.finish(), Error);           // t never written
  }
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(fresh + ".tmp"));
}

TEST(GgufWriter, RejectsBadDeclarations) {
  EXPECT_THROW(Writer(temp_path("a.gguf"), {}, {{"q", TensorType::Q4_0, {2, 33}}}), Error);  // rows not whole blocks
  EXPECT_THROW(Writer(temp_path("b.gguf"), {}, {{std::string(64, 'n'), TensorType::F32, {1}}}), Error);
  EXPECT_THROW(Writer(temp_path("c.gguf"), {}, {{"t", TensorType::F32, {1}}, {"t", TensorType::F32, {1}}}), Error);
  Metadata twice = {{"k", Value::u32(1)}, {"k", Value::u32(2)}};
  EXPECT_THROW(Writer(temp_path("d.gguf"), twice, {}), Error);
}

TEST(GgufReader, EveryTruncationIsAnError) {
  const std::string path = temp_path("sample.gguf");
  const std::string bytes = write_sample(path);
  const std::string cut = temp_path("cut.gguf");
  // Every prefix short of the last tensor's end is refused (the padding after it is optional).
  const size_t needed = bytes.size() - 22;  // tensor c: 10 bytes, then 22 of padding
  for (size_t n = 0; n < needed; ++n) {
    write_bytes(cut, bytes.substr(0, n));
    EXPECT_NE(open_error(cut), testing_util::kNoError) << "a file cut at " << n << " of " << bytes.size() << " bytes opened";
  }
  write_bytes(cut, bytes.substr(0, needed));
  EXPECT_NO_THROW(File::open(cut));
}

TEST(GgufReader, BitFlipsNeverCrash) {
  const std::string path = temp_path("sample.gguf");
  const std::string bytes = write_sample(path);
  const std::string flipped = temp_path("flipped.gguf");
  std::mt19937 gen(11);
  int refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = bytes;
    const int flips = 1 + trial % 3;
    for (int i = 0; i < flips; ++i) b[gen() % 200] ^= static_cast<char>(1u << (gen() % 8));  // within the header
    write_bytes(flipped, b);
    try {
      const File f = File::open(flipped);
      for (const TensorInfo& t : f.tensors()) ASSERT_LE(t.offset + t.bytes, b.size());
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 1000);  // most flips in the header are caught
}

namespace {

// A header with chosen fields, for the crafted cases below.
struct Crafted {
  std::string bytes;
  Crafted(uint32_t version, uint64_t tensors, uint64_t kvs) {
    put<uint32_t>(bytes, 0x46554747);
    put<uint32_t>(bytes, version);
    put<uint64_t>(bytes, tensors);
    put<uint64_t>(bytes, kvs);
  }
};

}  // namespace

TEST(GgufReader, CraftedHeadersGiveClearErrors) {
  const std::string path = temp_path("crafted.gguf");
  auto crafted_error = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    return open_error(path);
  };
  auto expect_error = [&](const std::string& bytes, const std::string& part) {
    const std::string e = crafted_error(bytes);
    EXPECT_NE(e.find(part), std::string::npos) << "got: " << e;
    EXPECT_NE(e.find(path), std::string::npos) << "the error must name the file: " << e;
  };

  expect_error("GGUX", "not a GGUF file");
  expect_error(Crafted(1, 0, 0).bytes, "version 1 is not supported");
  expect_error(Crafted(3, 0, 1ull << 60).bytes, "metadata count");
  expect_error(Crafted(3, 1ull << 60, 0).bytes, "tensor count");

  Crafted string_too_long(3, 0, 1);
  put<uint64_t>(string_too_long.bytes, 1ull << 62);
  string_too_long.bytes += std::string(16, 'k');
  expect_error(string_too_long.bytes, "metadata key");

  auto with_kv = [](const std::string& key, uint32_t type, const std::string& payload) {
    Crafted c(3, 0, 1);
    put_str(c.bytes, key);
    put<uint32_t>(c.bytes, type);
    return c.bytes + payload;
  };
  expect_error(with_kv("k", 13, ""), "unknown value type 13");
  std::string nested;
  put<uint32_t>(nested, 9);
  put<uint64_t>(nested, 1);
  expect_error(with_kv("k", 9, nested), "arrays of arrays");
  std::string huge_array;
  put<uint32_t>(huge_array, 6);
  put<uint64_t>(huge_array, 1ull << 61);
  expect_error(with_kv("k", 9, huge_array), "array length");
  std::string huge_strings;
  put<uint32_t>(huge_strings, 8);
  put<uint64_t>(huge_strings, 1ull << 40);
  expect_error(with_kv("k", 9, huge_strings), "array length");
  std::string bad_alignment;
  put<uint32_t>(bad_alignment, 24);
  expect_error(with_kv("general.alignment", 4, bad_alignment), "not a power of two");

  Crafted dup(3, 0, 2);
  for (int i = 0; i < 2; ++i) {
    put_str(dup.bytes, "k");
    put<uint32_t>(dup.bytes, 4);
    put<uint32_t>(dup.bytes, 1);
  }
  expect_error(dup.bytes, "appears twice");

  auto with_tensor = [](uint32_t dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
    Crafted c(3, 1, 0);
    put_str(c.bytes, "w");
    put<uint32_t>(c.bytes, dims);
    for (uint64_t n : ne) put<uint64_t>(c.bytes, n);
    put<uint32_t>(c.bytes, type);
    put<uint64_t>(c.bytes, offset);
    c.bytes.append((32 - c.bytes.size() % 32) % 32, '\0');
    return c.bytes + std::string(data, '\0');
  };
  EXPECT_EQ(crafted_error(with_tensor(1, {4}, 0, 0, 16)), testing_util::kNoError);
  expect_error(with_tensor(5, {1, 1, 1, 1, 1}, 0, 0, 16), "5 dimensions");
  expect_error(with_tensor(1, {0}, 0, 0, 16), "dimension 0 is 0");
  expect_error(with_tensor(2, {1ull << 40, 1ull << 40}, 0, 0, 16), "too large");
  expect_error(with_tensor(1, {4}, 12, 0, 16), "ggml type 12");
  expect_error(with_tensor(1, {33}, 8, 0, 64), "whole 32-element blocks");
  expect_error(with_tensor(1, {4}, 0, 8, 64), "not a multiple of the alignment");
  expect_error(with_tensor(1, {4}, 0, 0, 15), "run past the data section");
  expect_error(with_tensor(1, {4}, 0, 1ull << 63, 16), "run past the data section");

  Crafted overlap(3, 2, 0);
  for (const char* name : {"a", "b"}) {
    put_str(overlap.bytes, name);
    put<uint32_t>(overlap.bytes, 1);
    put<uint64_t>(overlap.bytes, 16);
    put<uint32_t>(overlap.bytes, 0);
    put<uint64_t>(overlap.bytes, name[0] == 'a' ? 0 : 32);
  }
  overlap.bytes.append((32 - overlap.bytes.size() % 32) % 32, '\0');
  overlap.bytes += std::string(96, '\0');
  expect_error(overlap.bytes, "overlap");
}
