#include "engine/checkpoint/base_weights.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <ranges>

#include "comm/rank_agreement.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/checkpoint/manifest.h"
#include "engine/sha256sums.h"
#include "io/safetensors.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

// The weight files of the model at `path`, as names inside its folder, in the loader's order.
std::vector<std::string> weight_files(const std::string& path) {
  std::vector<std::string> names;
  const SafetensorsModel model = SafetensorsModel::open(path);
  for (const SafetensorsFile& shard : model.shards())
    names.push_back(fs::path(shard.path()).filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The folder the weight files are in (`path` may name a single .safetensors file).
std::string folder_of(const std::string& path) {
  return fs::path(path).extension() == ".safetensors" ? fs::path(path).parent_path().string() : path;
}

// `name`'s SHA-256, checked against the folder's SHA256SUMS when that lists it.
std::string hash_checked(const std::string& folder, const std::string& name,
                         const std::map<std::string, std::string>& listed) {
  const std::string file = (fs::path(folder) / name).string();
  const std::string sum = sha256_file(file);
  auto it = listed.find(name);
  TS_CHECK(it == listed.end() || it->second == sum, "{}", sha256sums_mismatch(file));
  return sum;
}

std::string short_sum(const std::string& sum) { return sum.substr(0, 12); }

}  // namespace

BaseWeights hash_base_weights(const std::string& path, Communicator& host) {
  BaseWeights base{.path = path};
  std::vector<std::string> names;
  const std::string folder = folder_of(path);
  std::map<std::string, std::string> mine;  // the sums this rank computed
  on_every_rank(host, [&] {
    names = weight_files(path);
    const std::map<std::string, std::string> listed = read_sha256sums(folder);
    for (size_t i = static_cast<size_t>(host.rank()); i < names.size(); i += static_cast<size_t>(host.size()))
      mine[names[i]] = hash_checked(folder, names[i], listed);
  });
  for (size_t i = 0; i < names.size(); ++i) {
    const int owner = static_cast<int>(i % static_cast<size_t>(host.size()));
    base.files[names[i]] = broadcast_string(host.rank() == owner ? mine.at(names[i]) : std::string(), host, owner);
  }
  return base;
}

BaseWeights hash_base_weights(const std::string& path) {
  BaseWeights base{.path = path};
  const std::string folder = folder_of(path);
  const std::map<std::string, std::string> listed = read_sha256sums(folder);
  for (const std::string& name : weight_files(path)) base.files[name] = hash_checked(folder, name, listed);
  return base;
}

BaseWeights init_base(const std::string& init_json, int64_t seed) {
  return {.init = fmt::format("{} seed {}", init_json, seed)};
}

nlohmann::json base_json(const BaseWeights& base) {
  if (!base.init.empty()) return {{"init", base.init}};
  return {{"path", base.path}, {"sha256", base.files}};
}

BaseWeights base_from_json(const nlohmann::json& j, const std::string& where) {
  try {
    BaseWeights base;
    if (j.contains("init")) {
      base.init = j.at("init").get<std::string>();
    } else {
      base.path = j.at("path").get<std::string>();
      base.files = j.at("sha256").get<std::map<std::string, std::string>>();
    }
    return base;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: 'base': {}", where, e.what());
  }
}

void check_same_base(const BaseWeights& saved, const BaseWeights& now, const std::string& checkpoint) {
  if (saved.empty()) {
    spdlog::warn("{}: records no base model (written before checkpoints recorded it); cannot check that this job's "
                 "base is the one its adapters were trained on", checkpoint);
    return;
  }
  auto describe = [](const BaseWeights& b) {
    return b.init.empty() ? fmt::format("{} ({})", b.path, fmt::join(std::views::keys(b.files), ", "))
                          : fmt::format("model.init {}", b.init);
  };
  const std::string advice = "resume on the base they were trained on (or start a new checkpoint.dir)";
  TS_CHECK(saved.init.empty() == now.init.empty() && saved.init == now.init &&
               std::ranges::equal(std::views::keys(saved.files), std::views::keys(now.files)),
           "{}: its adapters were trained on the base {}; this job's base is {}: {}", checkpoint, describe(saved),
           describe(now), advice);
  for (const auto& [name, sum] : saved.files) {
    const std::string& got = now.files.at(name);
    TS_CHECK(got == sum,
             "{}: SHA-256 {}... is not the {}... recorded in {}: its adapters were trained on {} as it was then; {}",
             (fs::path(folder_of(now.path)) / name).string(), short_sum(got), short_sum(sum), checkpoint,
             (fs::path(folder_of(saved.path)) / name).string(), advice);
  }
  if (saved.path != now.path)
    spdlog::info("{}: its base moved from {} to {} (the same weight files)", checkpoint, saved.path, now.path);
}

}  // namespace tessera::checkpoint
