#include "admin/status_json.h"

#include <nlohmann/json.hpp>

#include "ingest/timestamp.h"

namespace sluice::admin {

std::string status_to_json(const ingest::PipelineStatus& s, int64_t now_ms) {
  using nlohmann::json;
  json partitions = json::array();
  for (const auto& p : s.partitions) {
    partitions.push_back({{"topic", p.topic},
                          {"partition", p.partition},
                          {"position", p.position},
                          {"committed", p.committed},
                          {"kafka_committed", p.kafka_committed}});
  }
  json tables = json::array();
  for (const auto& t : s.tables) {
    json entry = {{"table", t.table}, {"rows_inserted", t.rows_inserted}};
    if (t.max_timestamp >= 0) {
      char buf[14];
      ingest::format_mediawiki(t.max_timestamp, buf);
      entry["max_timestamp"] = std::string(buf, sizeof buf);
      entry["behind_s"] = std::max<int64_t>(0, now_ms / 1000 - t.max_timestamp);
    } else {
      entry["max_timestamp"] = nullptr;
    }
    tables.push_back(std::move(entry));
  }
  json gaps = json::array();
  for (const auto& g : s.gaps) {
    gaps.push_back({{"topic", g.topic},
                    {"partition", g.partition},
                    {"from", g.from},
                    {"to", g.to},
                    {"lost", g.lost},
                    {"detected_at_ms", g.detected_at_ms}});
  }
  const json out = {
      {"state", s.state},
      // The spool is not built yet: nothing is ever spooled, and these say so truthfully.
      {"spool", {{"events", 0}, {"bytes", 0}, {"oldest_age_s", 0}}},
      {"fetch_paused", s.fetch_paused},
      {"in_flight_bytes", s.in_flight_bytes},
      {"partitions", std::move(partitions)},
      {"tables", std::move(tables)},
      {"kafka_gaps", std::move(gaps)},
  };
  return out.dump();
}

}  // namespace sluice::admin
