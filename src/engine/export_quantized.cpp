#include "engine/export_quantized.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "engine/config/job_config.h"
#include "engine/export.h"
#include "engine/export_source.h"
#include "engine/model_weights.h"
#include "engine/qat.h"
#include "engine/qat_scales.h"
#include "engine/sha256sums.h"
#include "io/atomic_file.h"
#include "io/safetensors_writer.h"
#include "io/staged_folder.h"
#include "kernels/ops.h"
#include "lora/adapter.h"
#include "quant/packed.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

struct Plan {
  QuantTargets targets;
  DType quantize_from = DType::F32;  // a QAT job's compute dtype: what its forward quantized
  bool learned = false;              // from the QAT job's learned scales
};

Plan plan(const QuantizedExportOptions& o, const ExportSource& source) {
  std::optional<QatSpec> qat;
  DType compute = DType::F32;
  if (!o.checkpoint.empty()) {
    const JobConfig job = load_job_config((fs::path(o.checkpoint) / "config.yaml").string());
    if (job.quant.qat) qat = resolve_qat(*job.quant.qat, source.config());
    compute = qat_compute_dtype(job);
  }
  TS_CHECK(o.scheme || qat, "export --format quantized: --scheme is needed ({} was not trained quantization-aware)",
           o.checkpoint.empty() ? o.model : o.checkpoint);
  Plan p;
  const QuantSpec spec = o.scheme ? *o.scheme : qat->targets.weights;
  const std::vector<std::string> modules =
      !o.modules.empty() ? o.modules : qat && !o.scheme ? qat->targets.modules() : std::vector<std::string>{lora::kAllLinear};
  p.targets = resolve_quant_targets(spec, modules, source.config(), "--scheme/--modules");
  if (qat && qat->targets.weights == p.targets.weights) {
    p.quantize_from = compute;
    p.learned = qat->learned_scales;
    if (qat->targets.modules() != p.targets.modules())
      spdlog::warn("export: quantizing other modules than the QAT job fake-quantized ({} instead of {})",
                   fmt::join(p.targets.modules(), " "), fmt::join(qat->targets.modules(), " "));
  } else if (qat) {
    spdlog::warn("export: {} differs from the grid the QAT job trained on ({}): plain round-to-nearest",
                 p.targets.describe(), qat->targets.describe());
  }
  return p;
}

}  // namespace

QuantizedBytes quantized_tensor_bytes(const ModelConfig& config, const QuantTargets& targets, DType dtype) {
  QuantizedBytes bytes;
  for (const ParamSpec& p : model_parameters(config)) {
    if (!targets.selects(p.name)) {
      bytes.plain += shape_numel(p.shape) * dtype_size(dtype);
      continue;
    }
    for (const PackedPartSpec& part : packed_part_specs(resolve_quant_spec(targets.weights, p.shape), p.shape))
      bytes.packed += shape_numel(part.shape) * dtype_size(part.dtype);  // as stored: no alignment between parts
  }
  return bytes;
}

void export_quantized(const QuantizedExportOptions& o) {
  TS_CHECK(o.checkpoint.empty() != o.model.empty(), "export --format quantized: give one of --checkpoint and --model");
  StagedFolder out(o.out);
  ExportSource source = o.checkpoint.empty() ? ExportSource::hf_folder(o.model) : ExportSource::checkpoint(o.checkpoint);
  const Plan p = plan(o, source);
  // QAT with LoRA quantized W + s B A merged from the compute dtype's W, A and B.
  if (source.adapter()) source.set_merge_inputs(p.quantize_from);

  std::vector<TensorEntry> entries;
  for (const ParamSpec& param : source.params()) {
    if (!p.targets.selects(param.name)) {
      entries.push_back({param.name, o.dtype, param.shape});
      continue;
    }
    const QuantSpec spec = resolve_quant_spec(p.targets.weights, param.shape);
    for (const PackedPartSpec& part : packed_part_specs(spec, param.shape))
      entries.push_back({param.name + "." + std::string(part.name), part.dtype, part.shape});
  }
  std::unique_ptr<SequentialGptq> gptq;
  if (o.gptq) {  // on the GPU when there is one; the CPU computes in fp32
    const Device device = cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
    if (p.quantize_from != DType::F32)
      spdlog::warn("gptq: quantizing the QAT job's fp32 master weights (its forward used {})", dtype_name(p.quantize_from));
    gptq = std::make_unique<SequentialGptq>(source, p.targets, *o.gptq, device,
                                            device.is_cuda() ? DType::BF16 : DType::F32);
  }
  ShardedSafetensorsWriter writer(out.path(), entries, o.max_shard_bytes, {{"format", "pt"}});
  for (const ParamSpec& param : source.params()) {
    const Tensor w = source.read(param);
    if (!p.targets.selects(param.name)) {
      writer.write(param.name, ops::cast(w, o.dtype));
      continue;
    }
    const PackedTensor packed = gptq        ? gptq->quantize(param, w)
                                : p.learned ? quantize_learned(source, param, w, p.targets.weights, p.quantize_from)
                                            : quant::quantize(ops::cast(w, p.quantize_from), p.targets.weights);
    const std::vector<PackedPartSpec> parts = packed_part_specs(packed.spec, param.shape);
    for (size_t i = 0; i < parts.size(); ++i) writer.write(param.name + "." + std::string(parts[i].name), packed.parts[i]);
  }
  writer.finish();
  nlohmann::json config = source.config().to_json();
  config["torch_dtype"] = o.dtype == DType::BF16 ? "bfloat16" : o.dtype == DType::F16 ? "float16" : "float32";
  config["quantization_config"] = quantization_config_json(p.targets);
  write_file_atomically((fs::path(out.path()) / "config.json").string(), config.dump(2) + "\n");
  copy_tokenizer_files(source, out.path());
  write_sha256sums(out.path(), files_in(out.path()));
  out.commit();
  const QuantizedBytes bytes = quantized_tensor_bytes(source.config(), p.targets, o.dtype);
  const double bf16 = quantized_tensor_bytes(source.config(), QuantTargets{}, DType::BF16).total();
  spdlog::info("exported {} to {}: {}{} ({:.1f} MB packed, {:.1f} MB of other tensors in {}: {:.3f}x the bf16 size)",
               o.checkpoint.empty() ? o.model : o.checkpoint, o.out, p.targets.describe(), gptq ? " by GPTQ" : "",
               bytes.packed / 1e6, bytes.plain / 1e6, dtype_name(o.dtype), bytes.total() / bf16);
}

}  // namespace tessera
