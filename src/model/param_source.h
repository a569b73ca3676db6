// Where the model gets its parameters and puts its gradients, one unit at a time: the embedding,
// each layer, the head (final norm, and lm_head unless tied to the embedding). WholeParams hands
// out tensors already in memory; the ZeRO store (src/zero) gathers each unit from its shards on
// acquire and reduce-scatters its gradients on grads_done. The model only follows the protocol:
//   acquire(u) ... use the views ... release(u)
//   grads(u) ... accumulate into the views ... grads_done(u)   (once per backward pass)
#pragma once

#include "model/transformer_params.h"

namespace tessera {

struct UnitId {
  enum class Kind { Embed, Layer, Head };
  Kind kind;
  int64_t layer = 0;
  static UnitId embed() { return {Kind::Embed, 0}; }
  static UnitId layer_unit(int64_t l) { return {Kind::Layer, l}; }
  static UnitId head() { return {Kind::Head, 0}; }
  bool operator==(const UnitId&) const = default;
};

class ParamSource {
 public:
  virtual ~ParamSource() = default;
  // The unit's parameters (embed; layers[l]; final_norm and, untied, lm_head) as views that stay
  // valid until release(). Other fields of the returned struct are unspecified.
  virtual const ModelParams& acquire(UnitId unit) = 0;
  virtual void release(UnitId unit) = 0;
  // fp32 gradient views of the unit, accumulated into by backward; grads_done() when complete.
  virtual ModelParams& grads(UnitId unit) = 0;
  virtual void grads_done(UnitId unit) = 0;
  // True when acquire() always hands out the same tensors at the same addresses (weights held
  // whole), so that a captured CUDA graph may keep reading them.
  virtual bool fixed_addresses() const { return false; }
};

// Parameters and gradients held whole in memory (the forward tool, tests, single-device runs).
class WholeParams : public ParamSource {
 public:
  WholeParams(const ModelParams& params, ModelParams* grads) : params_(params), grads_(grads) {}
  const ModelParams& acquire(UnitId) override { return params_; }
  void release(UnitId) override {}
  ModelParams& grads(UnitId) override { return *grads_; }
  void grads_done(UnitId) override {}

 private:
  const ModelParams& params_;
  ModelParams* grads_;
};

}  // namespace tessera
