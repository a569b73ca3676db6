#include "engine/checkpoint/trainer_state.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"

namespace tessera::checkpoint {

std::string trainer_state_json(const TrainerState& state, int world_size) {
  nlohmann::json trainer = {{"format", 1},
                            {"step", state.step},
                            {"skipped_steps", state.skipped_steps},
                            {"schedule_steps", state.schedule_steps},
                            {"world_size", world_size},
                            {"lineage", state.lineage},
                            {"loader", {{"seed", state.loader.seed}, {"epoch", state.loader.epoch},
                                        {"position", state.loader.position}}}};
  if (!state.base.empty()) trainer["base"] = base_json(state.base);
  return trainer.dump(2) + "\n";
}

TrainerState read_trainer_state(const std::string& folder) {
  const std::string path = (std::filesystem::path(folder) / kTrainerFile).string();
  std::ifstream in(path);
  TS_CHECK(in, "{}: cannot open", path);
  TrainerState state;
  try {
    const nlohmann::json trainer = nlohmann::json::parse(in);
    state.step = trainer.at("step").get<int64_t>();
    state.skipped_steps = trainer.at("skipped_steps").get<int64_t>();
    state.schedule_steps = trainer.value("schedule_steps", int64_t{0});
    state.lineage = trainer.value("lineage", std::string());
    const auto& loader = trainer.at("loader");
    state.loader = {loader.at("seed").get<uint64_t>(), loader.at("epoch").get<int64_t>(),
                    loader.at("position").get<int64_t>()};
    if (trainer.contains("base")) state.base = base_from_json(trainer.at("base"), path);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", path, e.what());
  }
  return state;
}

std::string new_lineage() {
  std::random_device device;
  const uint64_t id = (static_cast<uint64_t>(device()) << 32) ^ device();
  return fmt::format("{:016x}", id);
}

}  // namespace tessera::checkpoint
