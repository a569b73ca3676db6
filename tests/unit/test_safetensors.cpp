#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "error_text.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            (std::string("tessera_st_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

// A safetensors file from a header text and a data section.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return out + header + data;
}

// The message of the tessera::Error that opening `path` raises.
std::string open_error(const std::string& path) {
  return testing_util::error_of([&] { SafetensorsFile::open(path); });
}

std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  return {
      {"f32", Tensor::from_vector<float>({1.5f, -2.f, 3.25f, 0.f, 1e-3f, 7.f}, {2, 3}, DType::F32)},
      {"bf16", Tensor::from_vector<uint16_t>({f32_to_bf16_bits(1.f), f32_to_bf16_bits(-0.5f)}, {2}, DType::BF16)},
      {"f16", Tensor::from_vector<uint16_t>({f32_to_f16_bits(0.25f), f32_to_f16_bits(65504.f), 0x7c00}, {3, 1},
                                            DType::F16)},
      {"i64", Tensor::from_vector<int64_t>({-1, int64_t(1) << 40}, {1, 2}, DType::I64)},
      {"i32", Tensor::from_vector<int32_t>({-7, 0, 2147483647}, {3}, DType::I32)},
      {"i8", Tensor::from_vector<int8_t>({-128, 127, 5}, {3}, DType::I8)},
      {"u8", Tensor::from_vector<uint8_t>({0, 255}, {2}, DType::U8)},
      {"scalar", Tensor::from_vector<float>({42.f}, {}, DType::F32)},
      {"empty", Tensor::from_vector<float>({}, {0, 4}, DType::F32)},
  };
}

void expect_same(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(a.nbytes(), b.nbytes());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.nbytes()));
}

}  // namespace

TEST(Safetensors, RoundTripEveryDType) {
  TempDir dir;
  const auto tensors = sample_tensors();
  save_safetensors(dir.file("a.safetensors"), tensors, {{"format", "pt"}});

  const std::string bytes = read_bytes(dir.file("a.safetensors"));
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);  // padded, so every tensor starts 8-byte aligned
  EXPECT_FALSE(fs::exists(dir.file("a.safetensors.tmp")));

  const auto file = SafetensorsFile::open(dir.file("a.safetensors"));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  // names() is file (data-offset) order, which is the declaration order here.
  std::vector<std::string> names;
  for (const auto& [n, t] : tensors) names.push_back(n);
  ASSERT_EQ(file.names(), names);
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    expect_same(file.tensor(name), t);
  }
  EXPECT_EQ(file.info("i32").shape, Shape({3}));
  EXPECT_EQ(file.info("i32").end - file.info("i32").begin, 12u);
  EXPECT_EQ(file.tensor("f32").to_vector<float>()[2], 3.25f);
  EXPECT_EQ(bf16_bits_to_f32(file.tensor("bf16").to_vector<uint16_t>()[1]), -0.5f);
}

TEST(Safetensors, TensorOutlivesFileObject) {
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"), sample_tensors());
  Tensor t;
  {
    auto file = SafetensorsFile::open(dir.file("a.safetensors"));
    t = file.tensor("f32");
  }
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>({1.5f, -2.f, 3.25f, 0.f, 1e-3f, 7.f}));
}

TEST(Safetensors, MisalignedDataIsCopiedAligned) {
  TempDir dir;
  // Header of 61 bytes: data starts at offset 69, not a multiple of 4.
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append(61 - header.size(), ' ');
  float values[2] = {3.f, -1.f};
  write_bytes(dir.file("m.safetensors"), make_file(header, std::string(reinterpret_cast<char*>(values), 8)));
  const Tensor t = SafetensorsFile::open(dir.file("m.safetensors")).tensor("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 4, 0u);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>({3.f, -1.f}));
}

TEST(Safetensors, UnknownTensorNamesIt) {
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"), sample_tensors());
  const auto file = SafetensorsFile::open(dir.file("a.safetensors"));
  EXPECT_FALSE(file.contains("nope"));
  try {
    file.tensor("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor 'nope'"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsWriter, EnforcesDeclarationAndRemovesTempFile) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  const Tensor a = Tensor::from_vector<float>({1, 2}, {2}, DType::F32);
  const Tensor b = Tensor::from_vector<int32_t>({3}, {1}, DType::I32);
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::I32, {1}}});
    EXPECT_TRUE(fs::exists(path + ".tmp"));
    EXPECT_THROW(w.write("b", b), Error);                          // out of order
    EXPECT_THROW(w.write("a", b), Error);                          // wrong dtype/shape
    w.write("a", a);
    EXPECT_THROW(w.finish(), Error);                               // "b" never written
  }  // destroyed unfinished
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {2}}, {"a", DType::F32, {2}}}), Error);
  EXPECT_THROW(SafetensorsWriter(path, {{"__metadata__", DType::F32, {2}}}), Error);

  SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::I32, {1}}});
  w.write("a", a);
  w.write("b", b);
  w.finish();
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  expect_same(SafetensorsFile::open(path).tensor("b"), b);
}

TEST(SafetensorsSharded, WritesShardsAndIndexAndReadsThemBack) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<TensorEntry> entries;
  for (int i = 0; i < 5; ++i) {
    std::vector<float> v(10, static_cast<float>(i));
    tensors.emplace_back("layer." + std::to_string(i) + ".weight", Tensor::from_vector(v, {10}, DType::F32));
    entries.push_back({tensors.back().first, DType::F32, {10}});
  }
  // 40-byte tensors, 100-byte shards: [0,1] [2,3] [4].
  ShardedSafetensorsWriter writer(dir.path().string(), entries, 100, {{"format", "pt"}});
  ASSERT_EQ(writer.shard_files().size(), 3u);
  EXPECT_EQ(writer.shard_files()[0], "model-00001-of-00003.safetensors");
  for (const auto& [name, t] : tensors) writer.write(name, t);
  writer.finish();

  const auto index = nlohmann::json::parse(read_bytes(dir.file("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"], 200);
  EXPECT_EQ(index["weight_map"]["layer.3.weight"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.4.weight"], "model-00003-of-00003.safetensors");

  const auto model = SafetensorsModel::open(dir.path().string());
  EXPECT_EQ(model.shards().size(), 3u);
  EXPECT_EQ(model.names().size(), 5u);
  EXPECT_EQ(model.shards()[0].metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) expect_same(model.tensor(name), t);
}

TEST(SafetensorsSharded, SingleShardIsModelSafetensors) {
  TempDir dir;
  const Tensor t = Tensor::from_vector<float>({1, 2, 3}, {3}, DType::F32);
  ShardedSafetensorsWriter writer(dir.path().string(), {{"w", DType::F32, {3}}});
  writer.write("w", t);
  writer.finish();
  EXPECT_TRUE(fs::exists(dir.file("model.safetensors")));
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors.index.json")));
  expect_same(SafetensorsModel::open(dir.path().string()).tensor("w"), t);

  // Re-exporting as shards removes the single file, which would otherwise shadow the index.
  ShardedSafetensorsWriter sharded(dir.path().string(), {{"w", DType::F32, {3}}, {"v", DType::F32, {3}}}, 12);
  sharded.write("w", t);
  sharded.write("v", t);
  sharded.finish();
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors")));
  EXPECT_EQ(SafetensorsModel::open(dir.path().string()).shards().size(), 2u);
  ShardedSafetensorsWriter single(dir.path().string(), {{"w", DType::F32, {3}}});
  single.write("w", t);
  single.finish();
  EXPECT_FALSE(fs::exists(dir.file("model.safetensors.index.json")));
  // A path to the file itself works too.
  expect_same(SafetensorsModel::open(dir.file("model.safetensors")).tensor("w"), t);
}

TEST(SafetensorsSharded, OversizedTensorGetsItsOwnShard) {
  TempDir dir;
  ShardedSafetensorsWriter writer(dir.path().string(),
                                  {{"a", DType::U8, {10}}, {"big", DType::U8, {500}}, {"c", DType::U8, {10}}}, 100);
  EXPECT_EQ(writer.shard_files().size(), 3u);
}

TEST(SafetensorsHostile, EveryTruncationIsAnError) {
  TempDir dir;
  save_safetensors(dir.file("ok.safetensors"), sample_tensors(), {{"k", "v"}});
  const std::string good = read_bytes(dir.file("ok.safetensors"));
  const std::string path = dir.file("bad.safetensors");
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(path, good.substr(0, len));
    EXPECT_THROW(SafetensorsFile::open(path), Error) << "truncated to " << len;
  }
}

TEST(SafetensorsHostile, BitFlipsNeverCrash) {
  TempDir dir;
  save_safetensors(dir.file("ok.safetensors"), sample_tensors(), {{"k", "v"}});
  const std::string good = read_bytes(dir.file("ok.safetensors"));
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  const std::string path = dir.file("bad.safetensors");
  int rejected = 0;
  for (size_t i = 0; i < 8 + header_len; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bytes = good;
      bytes[i] = static_cast<char>(bytes[i] ^ (1 << bit));
      write_bytes(path, bytes);
      try {
        const auto file = SafetensorsFile::open(path);
        for (const auto& name : file.names()) file.tensor(name);  // whatever opens must be readable
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(SafetensorsHostile, RandomBytesNeverCrash) {
  TempDir dir;
  const std::string path = dir.file("rand.safetensors");
  std::mt19937_64 rng(1234);
  for (int round = 0; round < 500; ++round) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (round % 2 && bytes.size() >= 8) {  // plausible length prefix, random header
      const uint64_t len = rng() % (bytes.size() - 7);
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(len >> (8 * i));
    }
    write_bytes(path, bytes);
    EXPECT_THROW(SafetensorsFile::open(path), Error) << "round " << round;
  }
}

TEST(SafetensorsHostile, CraftedHeadersGiveClearErrors) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const std::string data(16, '\0');
  struct Case {
    std::string header;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {R"([1,2,3])", "header must be a JSON object"},
      {R"("x")", "header must be a JSON object"},
      {R"({"a":)", "not valid JSON"},
      {std::string(5000, '[') , "not valid JSON"},
      {R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", "dtype 'F64' is not supported"},
      {R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "dtype 'BOOL' is not supported"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", "needs 8 bytes"},
      {R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", "run past the data section"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "end before they begin"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       "overlap"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "non-negative integers"},
      {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", "non-negative integers"},
      {R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", "too large"},
      {R"({"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]}})", "too large"},
      {R"({"a":{"dtype":"F32","shape":[2]}})", "missing 'data_offsets'"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "[begin, end]"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", "non-negative integer"},
      {R"({"a":[1,2]})", "expected an object"},
      {R"({"__metadata__":{"k":1}})", "__metadata__ 'k' must be a string"},
      {R"({"__metadata__":[]})", "__metadata__ must be an object"},
  };
  for (const auto& c : cases) {
    write_bytes(path, make_file(c.header, data));
    const std::string msg = open_error(path);
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.header << "\n  -> " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;  // names the file
  }
  // The tensor is named too.
  write_bytes(path, make_file(R"({"w.q":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", data));
  EXPECT_NE(open_error(path).find("tensor 'w.q'"), std::string::npos);

  // Header lengths past the file, or absurdly large.
  std::string bytes = make_file("{}", "");
  bytes[0] = 100;
  write_bytes(path, bytes);
  EXPECT_NE(open_error(path).find("runs past the end"), std::string::npos);
  bytes = make_file("{}", "");
  for (int i = 0; i < 8; ++i) bytes[i] = '\xff';
  write_bytes(path, bytes);
  EXPECT_NE(open_error(path).find("exceeds"), std::string::npos);
  write_bytes(path, "1234567");
  EXPECT_NE(open_error(path).find("too short"), std::string::npos);
  EXPECT_NE(open_error(dir.file("missing.safetensors")).find("cannot open"), std::string::npos);
}

TEST(SafetensorsHostile, BadShardIndexes) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"a", Tensor::from_vector<float>({1}, {1}, DType::F32)}});
  const auto model_error = [&](const std::string& index) {
    write_bytes(dir.file("model.safetensors.index.json"), index);
    return testing_util::error_of([&] { SafetensorsModel::open(dir.path().string()); });
  };
  EXPECT_NE(model_error(R"({"weight_map":{"a":"../s1.safetensors"}})").find("plain file name"), std::string::npos);
  EXPECT_NE(model_error(R"({"weight_map":{"a":"/etc/passwd"}})").find("plain file name"), std::string::npos);
  EXPECT_NE(model_error(R"({"weight_map":{"a":".."}})").find("plain file name"), std::string::npos);
  EXPECT_NE(model_error(R"({"weight_map":{"a":"s9.safetensors"}})").find("cannot open"), std::string::npos);
  EXPECT_NE(model_error(R"({"weight_map":{"b":"s1.safetensors"}})").find("does not contain it"),
            std::string::npos);
  EXPECT_NE(model_error(R"({"weight_map":{}})").find("weight_map is empty"), std::string::npos);
  save_safetensors(dir.file("s2.safetensors"), {{"b", Tensor::from_vector<float>({1}, {1}, DType::F32)},
                                                {"c", Tensor::from_vector<float>({2}, {1}, DType::F32)}});
  const std::string unlisted = model_error(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  EXPECT_NE(unlisted.find("holds tensor 'c'"), std::string::npos) << unlisted;
  EXPECT_NE(model_error(R"({"weight_map":{"a":1}})").find("must name a shard file"), std::string::npos);
  EXPECT_NE(model_error(R"({"nothing":1})").find("'weight_map'"), std::string::npos);
  EXPECT_NE(model_error(R"({"weight_map":)").find("not valid JSON"), std::string::npos);
  // And the good one.
  EXPECT_EQ(model_error(R"({"weight_map":{"a":"s1.safetensors"}})"), testing_util::kNoError);
}
