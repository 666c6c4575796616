#pragma once
/// What a writer is doing, for status and metrics: a snapshot Writer::state() returns (its own
/// header so that the status, which is read everywhere, need not include the writer).

#include <array>
#include <cstdint>
#include <string>

namespace sluice::ingest {

struct WriterState {
  bool failing = false;      ///< Writer::kFailingAfter attempts or more have failed in a row
  int64_t since_ms = 0;      ///< when failing: wall-clock time of the streak's first failure
  uint64_t attempts = 0;     ///< when failing: failed attempts in the streak
  std::string partition{};   ///< when failing: "topic/partition" of the batch
  std::string table{};       ///< when failing: the table whose statement failed, if one did
  std::string last_error{};  ///< when failing: DbStatus::describe() of the last failure
  /// Failed attempts since start, per storage::DbErrorClass (indexed by its value).
  std::array<uint64_t, 5> errors_by_class{};
};

}  // namespace sluice::ingest
