// Packs documents into rows of seq_len tokens, back to back with no padding but at the very end.
//
//  - A document's tokens keep their order; its positions count from 0.
//  - A document that does not fit in what is left of a row fills the row and goes on at the start
//    of the next one, where its positions restart at 0 (a new segment: attention never reaches
//    back into the previous row anyway, and positions never exceed seq_len - 1).
//  - labels[i] is the next token of the same document when that token is a target, else -100:
//    nothing predicts across documents, and the last token of a row whose document continues in
//    the next row still predicts that document's next token.
//  - The last row is padded with the pad token: label -100, positions 0.. (its own segment).
#pragma once

#include <cstdint>
#include <vector>

#include "io/data/document.h"

namespace tessera::data {

class Packer {
 public:
  Packer(int64_t seq_len, int32_t pad_id);
  void add(const Document& doc);
  void finish();  // pads the partial last row, if any
  // The complete rows so far as records (see sequence.h); the partial row stays.
  std::vector<int32_t> take_rows();
  int64_t targets() const { return targets_; }  // labels that are not -100, over all rows

 private:
  void push(int32_t id, int32_t label, int32_t position);

  int64_t seq_len_;
  int32_t pad_id_;
  std::vector<int32_t> rows_;                    // complete records
  std::vector<int32_t> ids_, labels_, positions_;  // the row being filled
  int64_t targets_ = 0;
};

}  // namespace tessera::data
