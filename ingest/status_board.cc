#include "ingest/status_board.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/logging.h"

namespace sluice::ingest {

PipelineStatus build_status(const StatusSources& in) {
  PipelineStatus s;
  s.partitions.reserve(in.cursors.size());
  for (const auto& [key, c] : in.cursors) {
    const bool orphan = c->mode() == PartitionMode::kOrphan;
    const bool asked = in.source != nullptr && !orphan;
    const int64_t high = asked ? in.source->cached_high_watermark(c->topic(), c->partition()) : -1;
    const int64_t lag =
        high >= 0 && c->fetch_next() >= 0 ? std::max<int64_t>(0, high - c->fetch_next()) : -1;
    auto& p = s.partitions.emplace_back(PipelineStatus::Partition{
        c->topic(), c->partition(), partition_mode_name(c->mode()), orphan ? -1 : c->fetch_next(),
        c->database_known() ? c->floor() : -1, c->kafka_committed(), high, lag, c->waiting_from(),
        c->waiting_to(), "", -1, c->held_for()});
    if (const auto e = in.lane.read_errors().find(key); e != in.lane.read_errors().end()) {
      p.spool_error = e->second;
    }
    if (asked) p.log_start = in.source->cached_low_watermark(c->topic(), c->partition());
  }
  s.schemas.path = in.schemas.root();
  s.schemas.from_path = in.schemas.origins().from_path;
  s.schemas.from_cache = in.schemas.origins().from_cache;
  s.schemas.fetched = in.schemas.origins().fetched;
  if (const SchemaSource* repo = in.schemas.repository()) {
    const auto st = repo->stats();
    s.schemas.repository = repo->url();
    s.schemas.cache = in.schemas.cache_root();
    s.schemas.not_found = st.not_found;
    s.schemas.fetch_failures = st.failures;
    s.schemas.waiting = st.waiting;
    s.schemas.reachable = st.reachable;
    s.schemas.last_error = st.last_error;
  }
  const auto totals = in.lane.spool().totals();
  for (const auto& [key, range] : in.lane.spool().partitions()) {
    const auto it = in.cursors.find(key);
    s.spool_partitions.push_back(
        {key.first, key.second, range,
         it != in.cursors.end() && range.events > 0 ? it->second->spool_newest_timestamp_ms()
                                                    : -1});
  }
  s.writers = in.writers.states();
  s.drain.rate_limit = in.governor.rate();
  s.drain.limiting = DrainGovernor::limit_name(in.governor.limiting());
  s.drain.events_per_s = in.governor.drained_rate();
  if (s.drain.events_per_s > 1) {
    s.drain.eta_s = static_cast<double>(totals.events) / s.drain.events_per_s;
  }
  if (const auto lag = in.governor.last_replica_lag()) s.drain.replica_lag_s = *lag;
  s.fetch_paused = in.flow.fetch_paused() || in.lane.full();
  s.state = in.state;
  const auto& pause = in.gate.pause_record();
  s.pause_reason = pause ? pause->reason : "";
  s.pause_local = pause && pause->local;
  s.paused_since_ms = pause ? pause->since_ms : 0;
  s.outage_error = in.gate.in_outage() ? in.gate.outage_error().describe() : "";
  s.outage_since_ms = in.gate.in_outage() ? in.gate.outage_since_ms() : 0;
  s.spool_events = totals.events;
  s.spool_bytes = totals.bytes;
  s.spool_oldest_age_s =
      totals.oldest_timestamp_ms >= 0
          ? std::max(0.0, static_cast<double>(in.wall_ms - totals.oldest_timestamp_ms) / 1e3)
          : 0.0;
  s.spool_full = in.lane.at_limit();
  s.spool_error = in.lane.error().is_ok() ? "" : in.lane.error().message();
  s.spool_error_since_ms = in.lane.error().is_ok() ? 0 : in.lane.error_since_ms();
  s.in_flight_bytes = in.writers.in_flight_bytes();
  s.db_up = in.gate.db_up();
  s.quiet = in.gate.quiet();
  s.mariadb = describe_endpoint(in.mariadb);
  s.mariadb_server = in.control != nullptr ? in.control->server_identity() : "";
  return s;
}

ServiceState service_state(const Gate& gate, const Cursors& cursors) {
  if (!gate.open()) return gate.closed_state();
  for (const auto& [key, c] : cursors) {
    const auto mode = c->mode();
    if (mode == PartitionMode::kDraining || mode == PartitionMode::kRefill ||
        (mode == PartitionMode::kOrphan && c->spool_holds_events())) {
      return ServiceState::kDraining;
    }
  }
  return ServiceState::kRunning;
}

PipelineStatus StatusBoard::snapshot() const {
  std::lock_guard lock(mu_);
  PipelineStatus out = status_;
  out.gaps = gaps_;
  for (const auto& [name, t] : tables_) out.tables.push_back(t);
  return out;
}

bool StatusBoard::due(bool force) {
  const auto now = clock_.now();
  if (!force && now - last_status_ < std::chrono::milliseconds(250)) return false;
  last_status_ = now;
  return true;
}

void StatusBoard::publish(PipelineStatus next) {
  next.consumed_by_topic = consumed_by_topic_;
  next.mariadb_notes = server_notes_;
  std::lock_guard lock(mu_);
  if (status_.state == ServiceState::kStopping) next.state = ServiceState::kStopping;
  status_ = std::move(next);
}

void StatusBoard::started() { last_summary_ = clock_.now(); }

void StatusBoard::set_stopping() {
  std::lock_guard lock(mu_);
  status_.state = ServiceState::kStopping;
}

void StatusBoard::add_gap(const std::string& topic, int32_t partition, int64_t from, int64_t to) {
  std::lock_guard lock(mu_);
  gaps_.push_back({topic, partition, from, to, to - from, clock_.wall_ms()});
  if (gaps_.size() > kGapsKept) gaps_.erase(gaps_.begin());
}

void StatusBoard::add_tables(const std::vector<WriteReport::Table>& tables) {
  if (tables.empty()) return;
  std::lock_guard lock(mu_);
  for (const auto& t : tables) {
    auto& table = tables_[t.name];
    table.table = t.name;
    table.rows_inserted += t.rows;
    table.max_timestamp = std::max(table.max_timestamp, t.max_timestamp);
  }
}

const std::vector<std::string>& StatusBoard::server_notes(int autoinc_lock_mode,
                                                          const MariaDbConfig& m) {
  if (autoinc_lock_mode == server_notes_mode_) return server_notes_;
  server_notes_mode_ = autoinc_lock_mode;
  server_notes_.clear();
  if (autoinc_lock_mode >= 0 && autoinc_lock_mode < 2 && m.writers > 1 &&
      m.insert_method == InsertMethod::kLoadData) {
    server_notes_.push_back(fmt::format(
        "innodb_autoinc_lock_mode = {}: InnoDB holds a table's AUTO-INC lock for a whole LOAD "
        "DATA, so the {} writers take turns on a table they share; "
        "innodb_autoinc_lock_mode = 2 lets them load side by side (with binary logging, use it "
        "with binlog_format = ROW: statement-based replicas would assign other ids)",
        autoinc_lock_mode, m.writers));
  }
  for (const auto& n : server_notes_) logger("mariadb")->warn("{}", n);
  return server_notes_;
}

void StatusBoard::log_summary(const PipelineStats& stats, size_t in_flight_bytes, bool force) {
  const auto now = clock_.now();
  if (!force && now - last_summary_ < std::chrono::seconds(30)) return;
  const double seconds = last_summary_ == Clock::time_point{}
                             ? 0
                             : std::chrono::duration<double>(now - last_summary_).count();
  const uint64_t consumed = stats.consumed.load();
  logger("ingest")->info(
      "consumed {} ({:.0f}/s), rows inserted {}, dead letters {}, batches {} (+{} already "
      "applied), in flight {} KiB",
      consumed,
      seconds > 0 ? static_cast<double>(consumed - last_summary_consumed_) / seconds : 0.0,
      stats.rows_inserted.load(), stats.dead_letters.load(), stats.batches_committed.load(),
      stats.batches_already_applied.load(), in_flight_bytes >> 10);
  last_summary_ = now;
  last_summary_consumed_ = consumed;
}

}  // namespace sluice::ingest
