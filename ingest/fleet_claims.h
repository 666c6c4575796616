#pragma once
/// What the pipeline asks of its fleet (fleet::Fleet implements it; unit tests fake it): what
/// other instances' spools may hold, and whether a fencing by the group is a twin's doing.
/// Thread safety: implementations are safe from any thread (the ingest thread calls them).

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::ingest {

class FleetClaims {
 public:
  virtual ~FleetClaims() = default;
  /// The lowest offset of [from, to) of the partition that a spool other than this instance's
  /// may hold — of a live instance or not: a spool outlives its process (DESIGN.md invariant
  /// 9). nullopt when none: below the returned offset, nothing of the range is claimed.
  virtual std::optional<int64_t> first_claimed(const std::string& topic, int32_t partition,
                                               int64_t from, int64_t to) const = 0;
  /// Whether first_claimed can be believed now: the fleet topic has been read to its end and
  /// lately up to one of this instance's own records. Until then every range counts as
  /// claimed — nothing is declared lost, no partition begins at Kafka's log start.
  virtual bool knows_claims() const = 0;
  /// Whether a process that started after this one runs with the same instance id: the group
  /// fences the two in turn until that one stops, so a fencing then is no sign that this one
  /// must go.
  virtual bool outlives_a_later_twin() const = 0;
};

}  // namespace sluice::ingest
