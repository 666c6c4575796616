#pragma once
/// Synthetic EventLogging capsules of any compiled schema, for `sluice bench`: every required
/// field, optional ones present about four times in five, values of the declared type (an
/// `enum` member when there is one), some strings non-ASCII. Deterministic for a seed; every
/// event carries a distinct uuid.
/// Thread safety: one instance per thread.

#include <cstdint>
#include <random>
#include <string>

#include "ingest/schema.h"

namespace sluice::loadtest {

class SyntheticEvents {
 public:
  SyntheticEvents(const ingest::Schema& schema, uint64_t seed);

  /// Appends the capsule of event number `seq` (its uuid encodes seed and seq) to `out`.
  void append(uint64_t seq, std::string& out);

 private:
  void append_object(const ingest::ObjectRule& rule, std::string& out);
  void append_value(const ingest::FieldRule& field, std::string& out);
  void append_string(std::string& out);

  const ingest::Schema& schema_;
  uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace sluice::loadtest
