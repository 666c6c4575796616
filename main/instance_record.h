#pragma once
/// This instance's record for the fleet, from the pipeline's status: what `sluice run` gives
/// the fleet to publish (and what the fleet model test gives its fleets, so the two agree).
/// Header-only: it joins an ingest type to a fleet type, and neither library depends on the
/// other.

#include "fleet/fleet_view.h"
#include "ingest/pipeline_status.h"

namespace sluice {

inline fleet::InstanceRecord describe_instance(const ingest::PipelineStatus& s) {
  fleet::InstanceRecord r;
  r.state = std::string(ingest::to_string(s.state));
  r.quiet = s.quiet;
  r.server = s.mariadb_server;
  for (const auto& p : s.partitions) {
    if (p.mode != "orphan") r.partitions.emplace_back(p.topic, p.partition);
  }
  for (const auto& sp : s.spool_partitions) {
    r.spooled.push_back(
        {sp.topic, sp.partition, sp.range.first_offset, sp.range.last_offset, sp.range.events});
  }
  r.spool_events = s.spool_events;
  return r;
}

}  // namespace sluice
