#include "engine/checkpoint/checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "comm/rank_agreement.h"
#include "core/log.h"
#include "engine/checkpoint/checkpoint_dir.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_file.h"

namespace tessera::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "state.h5";
constexpr const char* kConfigFile = "config.yaml";

ParamSpec spec_of(const UnitParam& p) { return {p.name, p.shape}; }

// rank 0's answer to find: a folder, "", or "\x01" + why the one asked for cannot be loaded.
std::string choose(const std::string& dir, const std::string& resume) {
  if (resume == "never") return "";
  if (resume != "auto") {
    const std::string problem = verify_manifest(resume);
    return problem.empty() ? resume : "\x01" + problem;
  }
  for (const StepFolder& folder : step_folders(dir)) {
    const std::string problem = verify_manifest(folder.path.string());
    if (problem.empty()) return folder.path.string();
    spdlog::warn("checkpoint {} is incomplete or corrupted ({}); skipping it", folder.path.string(), problem);
  }
  return "";
}

// A job about to start from step 0 in `dir`: refused when dir holds checkpoints, unless overwrite.
void claim_for_step_0(const std::string& dir, const std::string& resume, bool overwrite) {
  const std::vector<StepFolder> existing = step_folders(dir);
  if (existing.empty()) return;
  std::string names;
  for (const StepFolder& folder : existing) {
    const std::string problem = verify_manifest(folder.path.string());
    names += (names.empty() ? "" : ", ") + folder.path.filename().string() + (problem.empty() ? "" : " (" + problem + ")");
  }
  TS_CHECK(overwrite,
           "checkpoint.dir: {} already holds checkpoints ({}) and this job would start from step 0 ({}): set "
           "checkpoint.overwrite: true to delete them and start over, or use another checkpoint.dir",
           dir, names, resume == "never" ? "checkpoint.resume is never" : "none of them is complete and intact");
  for (const StepFolder& folder : existing) {
    spdlog::warn("checkpoint.overwrite: deleting {}", folder.path.string());
    discard(folder.path);
  }
}

}  // namespace

std::string save(const std::string& dir, ZeroStore& store, const TrainerState& state, const std::string& config_yaml,
                 int64_t keep_last, Communicator& host) {
  const fs::path final_dir = fs::path(dir) / ("step-" + std::to_string(state.step));
  const fs::path tmp = fs::path(dir) / (".step-" + std::to_string(state.step) + ".tmp");
  const std::string state_path = (tmp / kStateFile).string();
  try {
    on_rank0(host, [&] {
      fs::remove_all(tmp);
      fs::create_directories(tmp);
      StateFile::create(state_path, store.trainable_specs());  // frozen tensors have no state
      write_file((tmp / kTrainerFile).string(), trainer_state_json(state, host.size()));
      write_file((tmp / kConfigFile).string(), config_yaml);
    });
    // Serial HDF5: one rank at a time opens the file, writes its slices and closes it.
    for (int r = 0; r < host.size(); ++r) {
      on_every_rank(host, [&] {
        if (r != host.rank()) return;
        std::unique_ptr<StateFile> file;  // opened at the first slice: a rank may have none
        store.read_state(/*unique=*/true, [&](const ZeroStore::StateSlice& s) {
          if (!file) file = std::make_unique<StateFile>(state_path, /*writable=*/true);
          const Tensor parts[] = {s.master, s.m, s.v};
          for (int g = 0; g < 3; ++g) {
            const Tensor host_copy = parts[g].to(Device::cpu());
            file->write(kStateGroups[g], spec_of(*s.param), s.begin, s.end, host_copy.data_as<float>());
          }
        });
        if (file) file->close();
      });
    }
    on_rank0(host, [&] {
      write_manifest(tmp.string(), {kStateFile, kTrainerFile, kConfigFile});
      if (fs::exists(final_dir)) discard(final_dir);  // an older save of the same step
      fs::rename(tmp, final_dir);
      fsync_path(dir);
    });
  } catch (const std::exception& e) {
    if (host.rank() == 0) {
      std::error_code ec;
      fs::remove_all(tmp, ec);  // the space it took, back; the older checkpoints are as they were
    }
    fail("checkpoint of step {} not saved: {}", state.step, e.what());
  }
  if (host.rank() == 0) {
    spdlog::info("checkpoint saved: {}", final_dir.string());
    prune(dir, state.lineage, state.step, keep_last);
  }
  host.barrier();
  return final_dir.string();
}

std::string find(const std::string& dir, const std::string& resume, Communicator& host) {
  if (resume == "never") return "";
  std::string chosen = host.rank() == 0 ? choose(dir, resume) : "";
  chosen = broadcast_string(chosen, host);
  TS_CHECK(chosen.empty() || chosen[0] != '\x01', "checkpoint.resume: {} cannot be loaded: {}", resume, chosen.substr(1));
  return chosen;
}

std::string start(const std::string& dir, const std::string& resume, bool overwrite, const ZeroStore& store,
                  Communicator& host) {
  on_rank0(host, [&] {
    if (dir.empty()) return;
    check_writable(dir, store.trainable_params() * 12 + (64 << 10));  // fp32 master, m, v; the rest
    (void)step_folders(dir, /*warn=*/true);
  });
  const std::string chosen = find(dir, resume, host);
  if (chosen.empty()) on_rank0(host, [&] { claim_for_step_0(dir, resume, overwrite); });
  return chosen;
}

TrainerState load(const std::string& folder, ZeroStore& store) {
  const TrainerState state = read_trainer_state(folder);
  return with_context(folder, [&] {
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
