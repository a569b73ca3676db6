#include "io/data/packer.h"

#include <utility>

#include "core/error.h"
#include "io/data/sequence.h"

namespace tessera::data {

Packer::Packer(int64_t seq_len, int32_t pad_id) : seq_len_(seq_len), pad_id_(pad_id) {
  TS_CHECK(seq_len >= 2, "data.seq_len must be at least 2, got {}", seq_len);
}

void Packer::push(int32_t id, int32_t label, int32_t position) {
  ids_.push_back(id);
  labels_.push_back(label);
  positions_.push_back(position);
  if (label != kIgnoreLabel) ++targets_;
  if (static_cast<int64_t>(ids_.size()) < seq_len_) return;
  rows_.insert(rows_.end(), ids_.begin(), ids_.end());
  rows_.insert(rows_.end(), labels_.begin(), labels_.end());
  rows_.insert(rows_.end(), positions_.begin(), positions_.end());
  ids_.clear();
  labels_.clear();
  positions_.clear();
}

void Packer::add(const Document& doc) {
  const size_t n = doc.ids.size();
  int32_t position = 0;
  for (size_t i = 0; i < n; ++i) {
    if (ids_.empty()) position = 0;  // a new row restarts the document's positions
    const int32_t label = (i + 1 < n && doc.targets[i + 1]) ? doc.ids[i + 1] : kIgnoreLabel;
    push(doc.ids[i], label, position++);
  }
}

void Packer::finish() {
  for (int32_t position = 0; !ids_.empty(); ++position) push(pad_id_, kIgnoreLabel, position);
}

std::vector<int32_t> Packer::take_rows() { return std::exchange(rows_, {}); }

}  // namespace tessera::data
