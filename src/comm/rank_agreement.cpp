#include "comm/rank_agreement.h"

#include <cstring>

#include "core/error.h"

namespace tessera {

std::string broadcast_string(const std::string& value, Communicator& host, int root) {
  Tensor length = Tensor::from_vector<int64_t>({static_cast<int64_t>(value.size())}, {1}, DType::I64);
  host.broadcast(length, root).wait();
  Tensor bytes = Tensor::empty({length.data_as<int64_t>()[0]}, DType::U8);
  if (host.rank() == root && !value.empty()) std::memcpy(bytes.data(), value.data(), value.size());
  host.broadcast(bytes, root).wait();
  return std::string(bytes.data_as<char>(), static_cast<size_t>(bytes.numel()));
}

void throw_first_error(const std::string& error, Communicator& host) {
  Tensor first = Tensor::from_vector<int32_t>({error.empty() ? 0 : host.size() - host.rank()}, {1}, DType::I32);
  host.all_reduce(first, ReduceOp::Max).wait();
  const int32_t code = first.data_as<int32_t>()[0];
  if (code == 0) return;
  throw Error(broadcast_string(error, host, host.size() - code));
}

}  // namespace tessera
