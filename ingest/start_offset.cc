#include "ingest/start_offset.h"

#include <algorithm>

#include "common/enum_names.h"

namespace sluice::ingest {

const char* start_source_name(StartSource source) {
  static constexpr EnumNames<StartSource, StartSource::kEarliest, 4> kNames{
      {"the spool", "sluice_offsets", "the group's committed offset", "the earliest offset"}};
  return kNames(source);
}

StartPlan decide_start(const StartFacts& facts) {
  StartPlan plan;
  if (facts.spool) {
    const int64_t after_spool = facts.spool->last + 1;
    if (facts.database && *facts.database > after_spool) {
      // Another owner wrote past everything spooled here: the spool is stale.
      plan.fetch = plan.floor = *facts.database;
      plan.database_known = true;
      plan.release_below = after_spool;
      plan.source = StartSource::kDatabase;
      return plan;
    }
    plan.fetch = after_spool;
    plan.source = StartSource::kSpool;
    if (facts.database) {
      // Inside the spool (the usual case) or below it (MariaDB lags: refilled from Kafka).
      plan.floor = *facts.database;
      plan.database_known = true;
      plan.release_below = std::max(*facts.database, facts.spool->first);
    } else {
      // Not asked (the gate is closed): the spool's own start; the first write tells the rest.
      plan.floor = facts.spool->first;
    }
    return plan;
  }
  if (facts.database) {
    plan.fetch = plan.floor = *facts.database;
    plan.database_known = true;
    plan.source = StartSource::kDatabase;
  } else if (facts.group >= 0) {
    plan.fetch = plan.floor = facts.group;
    plan.source = StartSource::kGroup;
  } else if (facts.log_start >= 0) {
    plan.fetch = plan.floor = facts.log_start;
  }
  return plan;
}

}  // namespace sluice::ingest
