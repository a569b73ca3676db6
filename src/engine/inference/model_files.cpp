#include "engine/inference/model_files.h"

#include "core/error.h"

namespace tessera::inference {

LoadedInferenceModel load_inference_model(const ModelFiles&) { throw Error("inference models are not implemented yet"); }

}  // namespace tessera::inference
