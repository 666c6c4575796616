#include "ingest/assignment_facts.h"

#include <chrono>
#include <map>
#include <string>

#include "common/logging.h"

namespace sluice::ingest {

AssignmentFacts gather_start_facts(const std::vector<TopicPartition>& assigned,
                                   bool ask_database, storage::BatchSink& control,
                                   EventSource& source, const SpoolLane& lane,
                                   const FleetClaims* fleet) {
  auto log = logger("ingest");
  AssignmentFacts out;
  std::map<std::string, std::map<int32_t, int64_t>> stored;
  bool stored_known = ask_database;  // a closed gate asks MariaDB nothing
  for (const auto& tp : assigned) {
    if (!stored_known || stored.contains(tp.topic)) continue;
    if (auto st = control.read_offsets(tp.topic, stored[tp.topic]); !st.is_ok()) {
      stored_known = false;
      stored.clear();
      log->warn(
          "cannot read sluice_offsets ({}); starting from the group's committed offsets, which "
          "are never ahead of MariaDB",
          st.describe());
      const auto cls = st.error_class();
      if (cls == storage::DbErrorClass::kOutage || cls == storage::DbErrorClass::kReadOnly) {
        out.outage = st;
      }
    }
  }
  std::vector<TopicPartition> committed = assigned;
  if (auto st = source.committed(committed, std::chrono::seconds(10)); !st) {
    log->warn("{}; partitions without a sluice_offsets row start from the earliest offset",
              st.message());
    for (auto& c : committed) c.offset = kOffsetInvalid;
  }
  for (size_t i = 0; i < assigned.size(); ++i) {
    const auto& tp = assigned[i];
    StartFacts facts;
    auto spooled = lane.spool().partition(tp.topic, tp.partition);
    if (const auto staged = lane.staged({tp.topic, tp.partition})) {
      // Appended but not synced yet (the disk refuses for now): they are spooled all the same,
      // and the spool commits them once it can — whether or not a cursor still counts them.
      // Kafka must go on after them.
      if (!spooled) {
        spooled.emplace();
        spooled->first_offset = staged->first;
      }
      spooled->last_offset = std::max(spooled->last_offset, staged->second);
    }
    if (spooled) facts.spool = StartFacts::Spooled{spooled->first_offset, spooled->last_offset};
    if (stored_known) {
      const auto& topic_offsets = stored[tp.topic];
      if (const auto it = topic_offsets.find(tp.partition); it != topic_offsets.end()) {
        facts.database = it->second;
      }
    }
    facts.group = committed[i].offset;
    if (!facts.spool && !facts.database && facts.group < 0) {
      // Nowhere known: the earliest offset Kafka has — asked, so that the first event
      // delivered is checked against it like any other.
      int64_t high = -1;
      if (!source.watermarks(tp.topic, tp.partition, facts.log_start, high,
                             std::chrono::seconds(5))) {
        facts.log_start = -1;
      } else if (facts.log_start > 0 && fleet != nullptr &&
                 (!fleet->knows_claims() ||
                  fleet->first_claimed(tp.topic, tp.partition, 0, facts.log_start))) {
        // Another spool may hold some of what lies below the log's start (a topic new during
        // a long pause, spooled by another instance since; or the fleet not read yet): read
        // from 0, so that the jump to the log start is checked against the claims like any
        // other, once they are known.
        facts.log_start = 0;
      }
    }
    out.facts.push_back(facts);
    out.spooled.push_back(std::move(spooled));
  }
  return out;
}

storage::DbStatus tell_database_positions(storage::BatchSink& control,
                                          const std::vector<PartitionCursor*>& cursors) {
  std::map<std::string, std::vector<PartitionCursor*>> by_topic;
  for (auto* c : cursors) by_topic[c->topic()].push_back(c);
  for (auto& [topic, list] : by_topic) {
    std::map<int32_t, int64_t> stored;
    if (auto st = control.read_offsets(topic, stored); !st.is_ok()) return st;
    for (auto* c : list) {
      if (const auto it = stored.find(c->partition()); it != stored.end()) {
        c->learned_database(it->second);
      } else {
        c->learned_missing_row();
      }
    }
  }
  return {};
}

}  // namespace sluice::ingest
