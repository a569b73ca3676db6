#include "engine/checkpoint/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_file.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "state.h5";
constexpr const char* kTrainerFile = "trainer_state.json";
constexpr const char* kConfigFile = "config.yaml";

// step-<N> folders in dir, newest first.
std::vector<std::pair<int64_t, fs::path>> step_folders(const std::string& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (dir.empty() || !fs::is_directory(dir)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !name.starts_with("step-")) continue;
    const std::string digits = name.substr(5);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(digits), entry.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

// Rank 0's string, on every rank.
std::string broadcast_string(const std::string& value, Communicator& host) {
  Tensor length = Tensor::from_vector<int64_t>({static_cast<int64_t>(value.size())}, {1}, DType::I64);
  host.broadcast(length, 0).wait();
  Tensor bytes = Tensor::empty({length.data_as<int64_t>()[0]}, DType::U8);
  if (host.rank() == 0 && !value.empty()) std::memcpy(bytes.data(), value.data(), value.size());
  host.broadcast(bytes, 0).wait();
  return std::string(bytes.data_as<char>(), static_cast<size_t>(bytes.numel()));
}

ParamSpec spec_of(const UnitParam& p) { return {p.name, p.shape}; }

}  // namespace

std::string save(const std::string& dir, ZeroStore& store, const TrainerState& state, const std::string& config_yaml,
                 int64_t keep_last, Communicator& host) {
  const fs::path final_dir = fs::path(dir) / ("step-" + std::to_string(state.step));
  const fs::path tmp = fs::path(dir) / (".step-" + std::to_string(state.step) + ".tmp");
  const std::string state_path = (tmp / kStateFile).string();
  if (host.rank() == 0) {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    StateFile::create(state_path, store.trainable_specs());  // frozen tensors have no state
    nlohmann::json trainer = {{"format", 1},
                              {"step", state.step},
                              {"skipped_steps", state.skipped_steps},
                              {"schedule_steps", state.schedule_steps},
                              {"world_size", host.size()},
                              {"loader", {{"seed", state.loader.seed}, {"epoch", state.loader.epoch},
                                          {"position", state.loader.position}}}};
    std::ofstream(tmp / kTrainerFile) << trainer.dump(2) << "\n";
    std::ofstream(tmp / kConfigFile) << config_yaml;
  }
  host.barrier();
  // Serial HDF5: one rank at a time opens the file and writes its slices.
  for (int r = 0; r < host.size(); ++r) {
    if (r == host.rank()) {
      std::unique_ptr<StateFile> file;  // opened at the first slice: a rank may have none
      store.read_state(/*unique=*/true, [&](const ZeroStore::StateSlice& s) {
        if (!file) file = std::make_unique<StateFile>(state_path, /*writable=*/true);
        const Tensor parts[] = {s.master, s.m, s.v};
        for (int g = 0; g < 3; ++g) {
          const Tensor host_copy = parts[g].to(Device::cpu());
          file->write(kStateGroups[g], spec_of(*s.param), s.begin, s.end, host_copy.data_as<float>());
        }
      });
    }
    host.barrier();
  }
  if (host.rank() == 0) {
    write_manifest(tmp.string(), {kStateFile, kTrainerFile, kConfigFile});
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // an older save of the same step
    fs::rename(tmp, final_dir);
    fsync_path(dir);
    if (keep_last > 0) {
      const auto folders = step_folders(dir);
      for (size_t i = static_cast<size_t>(keep_last); i < folders.size(); ++i) fs::remove_all(folders[i].second);
    }
    spdlog::info("checkpoint saved: {}", final_dir.string());
  }
  host.barrier();
  return final_dir.string();
}

std::string find(const std::string& dir, const std::string& resume, Communicator& host) {
  if (resume == "never") return "";
  std::string chosen;
  if (host.rank() == 0) {
    if (resume != "auto") {
      const std::string problem = verify_manifest(resume);
      if (!problem.empty()) chosen = "\x01" + problem;  // reported on every rank below
      else chosen = resume;
    } else {
      for (const auto& [step, folder] : step_folders(dir)) {
        const std::string problem = verify_manifest(folder.string());
        if (problem.empty()) {
          chosen = folder.string();
          break;
        }
        spdlog::warn("checkpoint {} is incomplete or corrupted ({}); skipping it", folder.string(), problem);
      }
    }
  }
  chosen = broadcast_string(chosen, host);
  TS_CHECK(chosen.empty() || chosen[0] != '\x01', "checkpoint.resume: {} cannot be loaded: {}", resume, chosen.substr(1));
  return chosen;
}

TrainerState load(const std::string& folder, ZeroStore& store) {
  return with_context(folder, [&] {
    TrainerState state;
    try {
      std::ifstream in(fs::path(folder) / kTrainerFile);
      const nlohmann::json trainer = nlohmann::json::parse(in);
      state.step = trainer.at("step").get<int64_t>();
      state.skipped_steps = trainer.at("skipped_steps").get<int64_t>();
      state.schedule_steps = trainer.value("schedule_steps", int64_t{0});
      const auto& loader = trainer.at("loader");
      state.loader = {loader.at("seed").get<uint64_t>(), loader.at("epoch").get<int64_t>(),
                      loader.at("position").get<int64_t>()};
    } catch (const nlohmann::json::exception& e) {
      fail("{}: {}", kTrainerFile, e.what());
    }
    StateFile file((fs::path(folder) / kStateFile).string(), /*writable=*/false);
    store.write_state([&](const ZeroStore::StateSlice& s) {
      const Tensor parts[] = {s.master, s.m, s.v};
      for (int g = 0; g < 3; ++g) {
        Tensor host_copy = Tensor::empty({s.end - s.begin}, DType::F32);
        file.read(kStateGroups[g], spec_of(*s.param), s.begin, s.end, host_copy.data_as<float>());
        copy_bytes(parts[g], host_copy);
      }
    });
    store.refresh_working_copy();
    return state;
  });
}

}  // namespace tessera::checkpoint
