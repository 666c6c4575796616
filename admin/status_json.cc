#include "admin/status_json.h"

#include <nlohmann/json.hpp>

#include "ingest/timestamp.h"

namespace sluice::admin {

namespace {

/// Seconds from a YYYYMMDDHHMMSS timestamp to now, or -1 when it does not parse.
int64_t behind_seconds(const std::string& mediawiki, int64_t now_ms) {
  if (mediawiki.size() != 14) return -1;
  const std::string& t = mediawiki;
  const std::string iso = t.substr(0, 4) + "-" + t.substr(4, 2) + "-" + t.substr(6, 2) + "T" +
                          t.substr(8, 2) + ":" + t.substr(10, 2) + ":" + t.substr(12, 2) + "Z";
  const auto epoch = ingest::epoch_seconds_from_iso8601(iso);
  return epoch ? std::max<int64_t>(0, now_ms / 1000 - *epoch) : -1;
}

nlohmann::json schemas_json(const ingest::PipelineStatus::Schemas& s) {
  nlohmann::json out = {{"path", s.path},
                        {"from_path", s.from_path},
                        {"repository", s.repository.empty() ? nlohmann::json(nullptr)
                                                            : nlohmann::json(s.repository)}};
  if (s.repository.empty()) return out;
  out["cache"] = s.cache;
  out["from_cache"] = s.from_cache;
  out["fetched"] = s.fetched;
  out["not_found"] = s.not_found;
  out["fetch_failures"] = s.fetch_failures;
  out["waiting"] = s.waiting;
  out["reachable"] = s.reachable;
  out["last_error"] = s.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.last_error);
  return out;
}

}  // namespace

std::string status_to_json(const ingest::PipelineStatus& s, int64_t now_ms,
                           const std::vector<ReplicaFreshness::Replica>& replicas,
                           const nlohmann::json& fleet) {
  using nlohmann::json;
  json partitions = json::array();
  for (const auto& p : s.partitions) {
    json entry = {{"topic", p.topic},
                  {"partition", p.partition},
                  {"mode", p.mode},
                  {"position", p.position},
                  {"committed", p.committed},
                  {"kafka_committed", p.kafka_committed},
                  {"high_watermark", p.high_watermark},
                  {"lag", p.lag}};
    if (p.waiting_from >= 0) {
      entry["waiting_for"] = {{"from", p.waiting_from}, {"to", p.waiting_to}};
    }
    if (!p.spool_error.empty()) entry["spool_error"] = p.spool_error;
    if (!p.waits_for_schema.empty()) entry["waits_for_schema"] = p.waits_for_schema;
    partitions.push_back(std::move(entry));
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
  json writers = json::array();
  for (size_t i = 0; i < s.writers.size(); ++i) {
    const auto& w = s.writers[i];
    json entry = {{"writer", i}, {"state", w.failing ? "failing" : "ok"}};
    if (w.failing) {
      entry["since_ms"] = w.since_ms;
      entry["attempts"] = w.attempts;
      entry["partition"] = w.partition;
      entry["table"] = w.table;
      entry["last_error"] = w.last_error;
    }
    writers.push_back(std::move(entry));
  }
  json out = {
      {"state", ingest::to_string(s.state)},
      {"spool",
       {{"events", s.spool_events},
        {"bytes", s.spool_bytes},
        {"oldest_age_s", s.spool_oldest_age_s},
        {"full", s.spool_full},
        {"error", s.spool_error.empty() ? json(nullptr) : json(s.spool_error)},
        {"error_since_ms", s.spool_error_since_ms}}},
      {"fetch_paused", s.fetch_paused},
      {"drain",
       {{"rate_limit", s.drain.rate_limit > 0 ? json(s.drain.rate_limit) : json(nullptr)},
        {"limiting", s.drain.limiting},
        {"events_per_s", s.drain.events_per_s},
        {"eta_s", s.drain.eta_s >= 0 ? json(s.drain.eta_s) : json(nullptr)},
        {"replica_lag_s",
         s.drain.replica_lag_s >= 0 ? json(s.drain.replica_lag_s) : json(nullptr)}}},
      {"db_up", s.db_up},
      {"quiet", s.quiet},
      {"mariadb", s.mariadb},
      {"mariadb_notes", s.mariadb_notes},
      {"in_flight_bytes", s.in_flight_bytes},
      {"partitions", std::move(partitions)},
      {"tables", std::move(tables)},
      {"kafka_gaps", std::move(gaps)},
      {"writers", std::move(writers)},
      {"schemas", schemas_json(s.schemas)},
  };
  if (s.state == ingest::ServiceState::kPaused) {
    out["pause"] = {{"reason", s.pause_reason}, {"since_ms", s.paused_since_ms}};
  }
  if (!s.outage_error.empty()) {
    out["outage"] = {{"error", s.outage_error}, {"since_ms", s.outage_since_ms}};
  }
  if (!fleet.is_null()) out["fleet"] = fleet;
  if (!replicas.empty()) {
    json list = json::array();
    for (const auto& r : replicas) {
      json tables_on_replica = json::array();
      for (const auto& t : r.tables) {
        json entry = {{"table", t.table}};
        if (t.max_timestamp.empty()) {
          entry["max_timestamp"] = nullptr;
        } else {
          entry["max_timestamp"] = t.max_timestamp;
          if (const int64_t behind = behind_seconds(t.max_timestamp, now_ms); behind >= 0) {
            entry["behind_s"] = behind;
          }
        }
        tables_on_replica.push_back(std::move(entry));
      }
      json replica = {{"endpoint", r.endpoint},
                      {"checked_at_ms", r.checked_at_ms},
                      {"tables", std::move(tables_on_replica)}};
      if (!r.error.empty()) replica["error"] = r.error;
      list.push_back(std::move(replica));
    }
    out["replicas"] = std::move(list);
  }
  // Errors and names may hold bytes that are not UTF-8 (a server message quoting a value):
  // replaced, never a throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string spool_to_json(const std::vector<ingest::PipelineStatus::SpoolPartition>& partitions,
                          const std::optional<storage::PauseRecord>& pause) {
  using nlohmann::json;
  json list = json::array();
  uint64_t events = 0, bytes = 0;
  for (const auto& p : partitions) {
    list.push_back({{"topic", p.topic},
                    {"partition", p.partition},
                    {"first_offset", p.range.first_offset},
                    {"last_offset", p.range.last_offset},
                    {"events", p.range.events},
                    {"bytes", p.range.bytes},
                    {"oldest_timestamp_ms", p.range.oldest_timestamp_ms},
                    {"newest_timestamp_ms", p.newest_timestamp_ms}});
    events += p.range.events;
    bytes += p.range.bytes;
  }
  json out = {{"partitions", std::move(list)}, {"events", events}, {"bytes", bytes}};
  out["pause"] = pause ? json{{"reason", pause->reason}, {"since_ms", pause->since_ms}} : json();
  // Errors and names may hold bytes that are not UTF-8 (a server message quoting a value):
  // replaced, never a throw.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sluice::admin
