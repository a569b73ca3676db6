// The process-wide small-M gemm choices: the kernel (kernels/gemm_shape.h SmallMChoice) and the
// gemv's form and blocks per SM (kernels/gemv_form.h), each the environment's at first use, then
// whatever its setter stores.
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/gemv_form.h"
#include "kernels/kernel_variant.h"
#include "kernels/ops.h"

namespace tessera::ops {

namespace {

// The value of environment variable `var` among `values` (by name_of), or fallback when unset.
template <typename E, size_t N>
E from_environment(const char* var, const E (&values)[N], const char* (*name_of)(E), E fallback) {
  const char* v = std::getenv(var);
  if (!v) return fallback;
  std::string names;
  for (E e : values) {
    if (std::string(v) == name_of(e)) return e;
    names += (names.empty() ? "" : ", ") + std::string(name_of(e));
  }
  throw Error(std::string(var) + ": '" + v + "' is not one of " + names);
}

constexpr SmallMKernel kKernels[] = {SmallMKernel::Auto, SmallMKernel::CuBlas, SmallMKernel::Gemv,
                                     SmallMKernel::Fused};
constexpr GemvForm kForms[] = {GemvForm::Rows, GemvForm::Persistent, GemvForm::Split2, GemvForm::Split4};

std::atomic<SmallMKernel>& stored_kernel() {
  static std::atomic<SmallMKernel> value{
      from_environment("TESSERA_SMALL_M", kKernels, small_m_kernel_name, SmallMKernel::Auto)};
  return value;
}

std::atomic<GemvForm>& stored_form() {
  static std::atomic<GemvForm> value{from_environment("TESSERA_GEMV", kForms, gemv_form_name, GemvForm::Split4)};
  return value;
}

std::atomic<int>& stored_blocks_per_sm() {
  static std::atomic<int> value{env_choice("TESSERA_GEMV_BLOCKS_PER_SM", {1, 2, 3, 4, 5, 6, 7, 8}, true, 0)};
  return value;
}

}  // namespace

SmallMChoice small_m_choice() { return {stored_kernel().load(std::memory_order_relaxed)}; }

void set_small_m_choice(SmallMChoice choice) { stored_kernel().store(choice.kernel, std::memory_order_relaxed); }

const char* small_m_kernel_name(SmallMKernel kernel) {
  switch (kernel) {
    case SmallMKernel::Auto: return "auto";
    case SmallMKernel::CuBlas: return "cublas";
    case SmallMKernel::Gemv: return "gemv";
    case SmallMKernel::Fused: return "fused";
  }
  return "?";
}

GemvForm gemv_form() { return stored_form().load(std::memory_order_relaxed); }

void set_gemv_form(GemvForm form) { stored_form().store(form, std::memory_order_relaxed); }

const char* gemv_form_name(GemvForm form) {
  switch (form) {
    case GemvForm::Rows: return "rows";
    case GemvForm::Persistent: return "persistent";
    case GemvForm::Split2: return "split2";
    case GemvForm::Split4: return "split4";
  }
  return "?";
}

int gemv_blocks_per_sm() { return stored_blocks_per_sm().load(std::memory_order_relaxed); }

void set_gemv_blocks_per_sm(int blocks) { stored_blocks_per_sm().store(blocks, std::memory_order_relaxed); }

}  // namespace tessera::ops
