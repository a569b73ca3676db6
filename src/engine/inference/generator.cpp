#include "engine/inference/generator.h"

namespace tessera::inference {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "";
}

struct Generator::State {};

Generator::Generator(std::shared_ptr<InferenceModel>, std::shared_ptr<const tok::Tokenizer>,
                     const GeneratorOptions&) {
  throw Error("the generator is not implemented yet");
}
Generator::~Generator() = default;
uint64_t Generator::submit(Request, EventCallback) { throw Error("the generator is not implemented yet"); }
std::vector<uint64_t> Generator::submit_all(std::vector<Request>, EventCallback) {
  throw Error("the generator is not implemented yet");
}
void Generator::cancel(uint64_t) {}
GeneratorStats Generator::stats() const { return {}; }
int64_t Generator::context_length() const { return 0; }
void Generator::drain() {}
void Generator::stop() {}
void Generator::run_until_idle() {}

std::vector<Completion> generate_all(Generator&, std::vector<Request>, const EventCallback&) {
  throw Error("the generator is not implemented yet");
}

}  // namespace tessera::inference
