// Small agreements between the ranks over the host communicator: one rank's string on every rank,
// and an error on any rank thrown on all of them (so no rank goes on while another failed).
#pragma once

#include <exception>
#include <string>

#include "comm/communicator.h"

namespace tessera {

// `root`'s string, on every rank.
std::string broadcast_string(const std::string& value, Communicator& host, int root = 0);

// Every rank calls it with its own error ("" for none); then, on every rank, throws the error of the
// lowest rank that had one.
void throw_first_error(const std::string& error, Communicator& host);

// Runs fn on this rank; then, on every rank, throws the error of the lowest rank whose fn failed.
template <typename Fn>
void on_every_rank(Communicator& host, Fn&& fn) {
  std::string error;
  try {
    fn();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown error";
  }
  throw_first_error(error, host);
}

template <typename Fn>
void on_rank0(Communicator& host, Fn&& fn) {
  on_every_rank(host, [&] {
    if (host.rank() == 0) fn();
  });
}

}  // namespace tessera
