// A scheme's grid as GPTQ walks it, one column at a time: a group's parameters (scales, zero
// points) are chosen when GPTQ reaches the group, from the group's current (error-compensated)
// values and exactly as the scheme's round-to-nearest chooses them; each value of the group is
// then rounded on those parameters (clamped to the codes, since compensation can push a value
// past the range it was chosen for). The codes and parameters pack into the scheme's
// PackedTensor (kernels/quant_format.h): with nothing compensated, the result is bit for bit
// quant::quantize's (tests/unit/test_gptq.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/quant_format.h"

namespace tessera::quant {

class ColumnGrid {
 public:
  // A [rows, cols] matrix under `spec` (int8, int4, q8_0 or q4_0; an Error for the others).
  ColumnGrid(const QuantSpec& spec, int64_t rows, int64_t cols);

  int64_t group_size() const { return spec_.group_size; }  // int8: the whole row
  int64_t groups() const { return groups_; }               // per row

  // Chooses group `group`'s parameters for `row` from values[k], k < group_size(): the group's
  // current values in that row, in their own column order. Rows are independent (one thread each).
  void choose(int64_t row, int64_t group, const float* values);
  // Rounds x, the value at (row, col), on its group's parameters (chosen before): keeps the code
  // and returns the value it dequantizes to. Different (row, col) may be rounded concurrently.
  float round(int64_t row, int64_t col, float x);

  PackedTensor pack() const;  // on the CPU

 private:
  QuantSpec spec_;
  int64_t rows_, cols_, groups_;
  std::vector<uint8_t> codes_;    // [rows, cols]: int4 and q4_0 in [0, 15], int8 and q8_0 as int8 bits
  std::vector<float> scale_;      // [rows, groups]: the scale dequantization multiplies by (f16-rounded where stored so)
  std::vector<float> inverse_;    // [rows, groups]: what values are multiplied by before rounding
  std::vector<uint8_t> zero_;     // [rows, groups]: int4's zero point (8 when symmetric)
};

}  // namespace tessera::quant
