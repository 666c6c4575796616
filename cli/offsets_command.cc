#include "cli/offsets_command.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "common/config.h"
#include "common/logging.h"
#include "ingest/kafka_range_reader.h"
#include "ingest/timestamp.h"
#include "cli/fleet_reader.h"
#include "storage/mariadb_connection.h"
#include "storage/mariadb_sink.h"

namespace sluice::cli {
namespace {

using namespace std::chrono_literals;
using Rows = std::vector<std::vector<std::optional<std::string>>>;

constexpr int kFailed = 1;
constexpr int kUsage = 2;
constexpr int kRefused = 4;

/// Everything known of one partition.
struct Position {
  int32_t partition = 0;
  int64_t mariadb = -1;  ///< sluice_offsets.next_offset, -1: no row
  std::string mariadb_updated;
  int64_t group = -1;  ///< the consumer group's committed offset, -1: none
  int64_t log_start = -1, log_end = -1;
  struct Spooled {
    std::string instance;
    int64_t first = 0, last = 0;
    uint64_t events = 0;
  };
  std::vector<Spooled> spooled;
};

std::string quoted(storage::MariaDbConnection& c, const std::string& text) {
  std::string out = "'";
  c.append_escaped(out, text);
  return out + "'";
}

/// Who runs the command, for the record of a move.
std::string operator_name() {
  const passwd* pw = getpwuid(getuid());
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(pw != nullptr ? pw->pw_name : std::to_string(getuid())) + "@" + host;
}

class Offsets {
 public:
  Offsets(const Config& config, const OffsetsOptions& o) : config_(config), o_(o) {}

  int open() {
    auto reader = ingest::KafkaRangeReader::create(config_.kafka, config_.kafka.group_id);
    if (!reader) return fail(reader.status().message(), kUsage);
    kafka_ = std::move(reader).value();
    if (const auto st = storage::MariaDbConnection::open(config_.mariadb, db_); !st.is_ok()) {
      return fail("MariaDB: " + st.describe(), kFailed);
    }
    return fleet_.open_and_catch_up(config_);
  }

  /// The topics to look at: --topic, else those kafka.topics names or matches.
  int topics(std::vector<std::string>& out) {
    if (!o_.topic.empty()) {
      out = {o_.topic};
      return 0;
    }
    ingest::KafkaRangeReader::Cluster cluster;
    if (auto st = kafka_->cluster(cluster, 10s); !st) return fail(st.message(), kFailed);
    for (const auto& t : config_.kafka.topics) {
      if (!t.starts_with("^")) {
        out.push_back(t);
        continue;
      }
      std::regex re;
      try {
        re = std::regex(t.substr(1));
      } catch (const std::regex_error&) {
        return fail("kafka.topics: '" + t + "' is not a pattern this command can read: name the "
                    "topic with --topic",
                    kUsage);
      }
      for (const auto& [name, info] : cluster.topics) {
        if (std::regex_search(name, re, std::regex_constants::match_continuous)) {
          out.push_back(name);
        }
      }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return 0;
  }

  int positions(const std::string& topic, std::vector<Position>& out) {
    std::vector<int32_t> partitions;
    bool unknown = false;
    if (auto st = kafka_->partitions(topic, partitions, 10s, unknown); !st) {
      return fail(st.message(), unknown ? kRefused : kFailed);
    }
    if (o_.partition >= 0) {
      if (std::find(partitions.begin(), partitions.end(), o_.partition) == partitions.end()) {
        return fail(topic + " has no partition " + std::to_string(o_.partition), kRefused);
      }
      partitions = {o_.partition};
    }
    std::vector<int64_t> group;
    if (auto st = kafka_->committed(topic, partitions, group, 10s); !st) {
      return fail(st.message(), kFailed);
    }
    Rows rows;
    const auto st = db_->query(
        "SELECT kafka_partition, next_offset, updated_at FROM sluice_offsets WHERE "
        "consumer_group = " + quoted(*db_, config_.kafka.group_id) +
            " AND topic = " + quoted(*db_, topic),
        rows);
    if (!st.is_ok() && st.describe().find("doesn't exist") == std::string::npos) {
      return fail("MariaDB: " + st.describe(), kFailed);
    }
    std::map<int32_t, std::pair<int64_t, std::string>> stored;
    for (const auto& r : rows) {
      stored[std::stoi(r[0].value_or("0"))] = {std::stoll(r[1].value_or("-1")), r[2].value_or("")};
    }
    for (size_t i = 0; i < partitions.size(); ++i) {
      Position p;
      p.partition = partitions[i];
      p.group = group[i];
      if (const auto it = stored.find(p.partition); it != stored.end()) {
        p.mariadb = it->second.first;
        p.mariadb_updated = it->second.second;
      }
      if (auto w = kafka_->watermarks(topic, p.partition, p.log_start, p.log_end, 10s); !w) {
        return fail(w.message(), kFailed);
      }
      for (const auto& [id, r] : fleet_.view().instances()) {
        for (const auto& s : r.spooled) {
          if (s.topic == topic && s.partition == p.partition) {
            p.spooled.push_back({id, s.first, s.last, s.events});
          }
        }
      }
      out.push_back(std::move(p));
    }
    return 0;
  }

  /// What earlier moves recorded (newest first).
  std::vector<std::string> history(const std::string& topic) {
    Rows rows;
    std::vector<std::string> out;
    if (!db_->query("SELECT kafka_partition, received_at, reason FROM sluice_dead_letter WHERE "
                    "topic = " + quoted(*db_, topic) +
                        " AND reason LIKE 'offsets\\_set:%' ORDER BY id DESC LIMIT 20",
                    rows)
             .is_ok()) {
      return out;
    }
    for (const auto& r : rows) {
      out.push_back(topic + "/" + r[0].value_or("?") + " at " + r[1].value_or("?") + " UTC: " +
                    r[2].value_or(""));
    }
    return out;
  }

  int show() {
    std::vector<std::string> names;
    if (const int code = topics(names)) return code;
    nlohmann::json out = nlohmann::json::array();
    for (const auto& topic : names) {
      std::vector<Position> ps;
      if (const int code = positions(topic, ps)) return code;
      nlohmann::json t = {{"topic", topic}, {"partitions", nlohmann::json::array()}};
      for (const auto& p : ps) {
        nlohmann::json spooled = nlohmann::json::array();
        for (const auto& s : p.spooled) {
          spooled.push_back({{"instance", s.instance},
                             {"first_offset", s.first},
                             {"last_offset", s.last},
                             {"events", s.events}});
        }
        t["partitions"].push_back({{"partition", p.partition},
                                   {"mariadb_next_offset", p.mariadb},
                                   {"mariadb_updated_at", p.mariadb_updated},
                                   {"group_offset", p.group},
                                   {"log_start", p.log_start},
                                   {"log_end", p.log_end},
                                   {"spooled", spooled}});
      }
      t["moves"] = history(topic);
      out.push_back(t);
    }
    if (o_.json) {
      std::cout << out.dump() << "\n";
      return 0;
    }
    std::cout << "consumer group " << config_.kafka.group_id
              << " (-1: none; MariaDB's next offset is where Sluice goes on)\n";
    for (const auto& t : out) {
      std::cout << "\n" << t["topic"].get<std::string>() << "\n"
                << "  partition  mariadb next    group  log start   log end  spooled\n";
      for (const auto& p : t["partitions"]) {
        std::cout << "  " << std::setw(9) << p["partition"].get<int>() << std::setw(14)
                  << p["mariadb_next_offset"].get<int64_t>() << std::setw(9)
                  << p["group_offset"].get<int64_t>() << std::setw(11)
                  << p["log_start"].get<int64_t>() << std::setw(10) << p["log_end"].get<int64_t>()
                  << "  ";
        if (p["spooled"].empty()) std::cout << "-";
        for (const auto& s : p["spooled"]) {
          std::cout << s["instance"].get<std::string>() << " " << s["first_offset"].get<int64_t>()
                    << ".." << s["last_offset"].get<int64_t>() << " ";
        }
        std::cout << "\n";
      }
      for (const auto& m : t["moves"]) std::cout << "  moved: " << m.get<std::string>() << "\n";
    }
    return 0;
  }

  int set() {
    const int modes = (o_.to_time.empty() ? 0 : 1) + (o_.has_to_offset ? 1 : 0) +
                      (o_.to_earliest ? 1 : 0) + (o_.to_latest ? 1 : 0) +
                      (o_.has_shift_by ? 1 : 0);
    if (modes != 1) {
      return fail(
          "offsets set: name exactly one of --to-time, --to-offset, --to-earliest, --to-latest, "
          "--shift-by",
          kUsage);
    }
    if (o_.dry_run == o_.confirm) {
      return fail("offsets set: --dry-run to see the plan, or --confirm to carry it out", kUsage);
    }
    int64_t time_ms = -1;
    if (!o_.to_time.empty()) {
      const auto seconds = ingest::epoch_seconds_from_iso8601(o_.to_time);
      if (!seconds) {
        return fail("--to-time '" + o_.to_time + "' is not an ISO-8601 date-time", kUsage);
      }
      time_ms = *seconds * 1000;
    }
    // The whole fleet must be stopped: a running instance (paused or not) holds its partitions'
    // positions in memory, and its spool would drain onto the moved offsets.
    std::vector<std::string> running;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [id, r] : fleet_.view().instances()) {
      if (r.state != "stopped" || fleet_.view().live(id, now)) {
        running.push_back(id + " (" + r.state + ")");
      }
    }
    if (!running.empty()) {
      std::string list;
      for (const auto& r : running) list += (list.empty() ? "" : ", ") + r;
      return fail("offsets set: the fleet is not stopped: " + list +
                      "; stop every instance first (systemctl stop sluice), then run it again",
                  kRefused);
    }
    std::vector<Position> ps;
    if (const int code = positions(o_.topic, ps)) return code;
    std::vector<int64_t> by_time;
    if (time_ms >= 0) {
      std::vector<int32_t> partitions;
      for (const auto& p : ps) partitions.push_back(p.partition);
      if (auto st = kafka_->offsets_for_times(o_.topic, partitions, time_ms, by_time, 10s); !st) {
        return fail(st.message(), kFailed);
      }
    }
    std::vector<Move> moves;
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto& p = ps[i];
      // Where Sluice would go on: MariaDB's offset, else the group's, else the log start.
      const int64_t from = p.mariadb >= 0 ? p.mariadb : p.group >= 0 ? p.group : p.log_start;
      int64_t to = from;
      if (o_.has_to_offset) to = o_.to_offset;
      if (o_.to_earliest) to = p.log_start;
      if (o_.to_latest) to = p.log_end;
      if (time_ms >= 0) to = by_time[i] >= 0 ? by_time[i] : p.log_end;
      if (o_.has_shift_by) to = std::clamp(from + o_.shift_by, p.log_start, p.log_end);
      const std::string name = o_.topic + "/" + std::to_string(p.partition);
      if (to < p.log_start || to > p.log_end) {
        return fail("offsets set: " + name + ": offset " + std::to_string(to) +
                        " is outside the log [" + std::to_string(p.log_start) + ", " +
                        std::to_string(p.log_end) + "]",
                    kRefused);
      }
      // A spooled range wholly below where Sluice goes on is already in MariaDB (a drain
      // would trim it); one reaching past it holds events not yet written.
      const auto unwritten = std::find_if(p.spooled.begin(), p.spooled.end(),
                                          [&](const auto& s) { return s.last >= from; });
      if (unwritten != p.spooled.end()) {
        const auto& s = *unwritten;
        return fail("offsets set: " + name + ": the spool of " + s.instance + " holds offsets " +
                        std::to_string(s.first) + ".." + std::to_string(s.last) +
                        "; start that instance to drain it, or discard it there first (sluice "
                        "spool discard --topic " + o_.topic + " --partition " +
                        std::to_string(p.partition) + " --confirm)",
                    kRefused);
      }
      moves.push_back({p.partition, from, to});
    }
    std::cout << (o_.confirm ? "moving" : "would move") << " consumer group "
              << config_.kafka.group_id << " on " << o_.topic << ":\n";
    for (const auto& m : moves) {
      std::cout << "  partition " << m.partition << ": " << m.from << " -> " << m.to;
      if (m.to > m.from) std::cout << " (skips " << m.to - m.from << " events, never written)";
      if (m.to < m.from) std::cout << " (reads " << m.from - m.to << " events again)";
      if (m.to == m.from) std::cout << " (unchanged)";
      std::cout << "\n";
    }
    if (o_.dry_run) {
      std::cout << "Nothing changed (--dry-run). Run again with --confirm to do it.\n";
      return 0;
    }
    // No member in the group: a stopped instance with static membership keeps its place until
    // its session times out (kafka.properties session.timeout.ms), so wait that out.
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    for (bool told = false;;) {
      std::string error;
      const int members = kafka_->group_members(config_.kafka.group_id, 10s, error);
      if (members < 0) return fail("offsets set: " + error + "; nothing changed", kFailed);
      if (members == 0) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        return fail("offsets set: the group " + config_.kafka.group_id + " still has " +
                        std::to_string(members) +
                        " member(s): an instance runs somewhere; nothing changed",
                    kRefused);
      }
      if (!told) {
        std::cout << "waiting for the group to have no member (a stopped instance keeps its "
                     "place until its session times out)...\n";
        told = true;
      }
      std::this_thread::sleep_for(2s);
    }
    // MariaDB first, every partition in one transaction: its sluice_offsets is where Sluice goes
    // on, so it moves all or nothing. Then the group's offsets follow.
    if (const int code = move_in_mariadb(moves, operator_name())) return code;
    std::map<int32_t, int64_t> commit;
    for (const auto& m : moves) commit[m.partition] = m.to;
    if (auto st = kafka_->commit(o_.topic, commit); !st) {
      std::cerr << "sluice: offsets set: MariaDB's offsets moved (Sluice goes on from them), "
                   "the group's did not: "
                << st.message() << "\n";
      return kFailed;
    }
    std::cout << "done: Sluice goes on from these offsets when it starts\n";
    return 0;
  }

 private:
  struct Move {
    int32_t partition;
    int64_t from, to;
  };

  /// Every partition's sluice_offsets row, by compare-and-set, and the record of each move, in
  /// one transaction: all or nothing.
  int move_in_mariadb(const std::vector<Move>& moves, const std::string& who) {
    auto check = [&](const storage::DbStatus& st) {
      if (st.is_ok()) return true;
      std::cerr << "sluice: offsets set: MariaDB: " << st.describe() << "; nothing changed\n";
      (void)db_->exec("ROLLBACK");
      return false;
    };
    {
      // The bookkeeping tables as the service makes them (a move before its first start), and
      // the server writable.
      storage::MariaDbSink sink(config_.mariadb, config_.kafka.group_id,
                                storage::BookkeepingTables{}, storage::SinkMode::kExactlyOnce);
      if (const auto st = sink.probe(); !st.is_ok()) {
        std::cerr << "sluice: offsets set: MariaDB: " << st.describe() << "; nothing changed\n";
        return kFailed;
      }
    }
    if (!check(db_->exec("START TRANSACTION"))) {
      return kFailed;
    }
    for (const auto& m : moves) {
      if (m.to == m.from) continue;
      const std::string where =
          " WHERE consumer_group = " + quoted(*db_, config_.kafka.group_id) +
          " AND topic = " + quoted(*db_, o_.topic) +
          " AND kafka_partition = " + std::to_string(m.partition);
      const std::string name = o_.topic + "/" + std::to_string(m.partition);
      Rows rows;
      if (!check(db_->query("SELECT next_offset FROM sluice_offsets" + where + " FOR UPDATE",
                            rows))) {
        return kFailed;
      }
      const int64_t now = rows.empty() ? -1 : std::stoll(rows[0][0].value_or("-1"));
      if (!rows.empty() && now != m.from) {
        (void)db_->exec("ROLLBACK");
        return fail("offsets set: " + name + ": MariaDB's offset moved meanwhile (" +
                        std::to_string(m.from) + " -> " + std::to_string(now) +
                        "): is an instance running? Nothing changed",
                    kRefused);
      }
      const std::string reason =
          "offsets_set: " + name + " moved from " + std::to_string(m.from) + " to " +
          std::to_string(m.to) + " by " + who +
          (m.to > m.from ? ": offsets [" + std::to_string(m.from) + ", " + std::to_string(m.to) +
                               ") (" + std::to_string(m.to - m.from) +
                               " events) skipped, never written"
                         : ": offsets [" + std::to_string(m.to) + ", " + std::to_string(m.from) +
                               ") to be read again");
      const nlohmann::json payload = {{"topic", o_.topic}, {"partition", m.partition},
                                      {"from", m.from},    {"to", m.to},
                                      {"by", who},         {"group", config_.kafka.group_id}};
      const std::string write =
          rows.empty() ? "INSERT INTO sluice_offsets (consumer_group, topic, kafka_partition, "
                         "next_offset, updated_at) VALUES (" +
                             quoted(*db_, config_.kafka.group_id) + ", " +
                             quoted(*db_, o_.topic) + ", " + std::to_string(m.partition) + ", " +
                             std::to_string(m.to) + ", UTC_TIMESTAMP(6))"
                       : "UPDATE sluice_offsets SET next_offset = " + std::to_string(m.to) +
                             ", updated_at = UTC_TIMESTAMP(6)" + where;
      // Recorded at offset -1, an offset no event has: a dead letter is written once per
      // offset, and this record must never count as one of an event's (a replay of the range
      // would otherwise not record a bad event at the first skipped offset).
      const std::string record =
          "INSERT INTO sluice_dead_letter (topic, kafka_partition, kafka_offset, reason, "
          "payload, received_at) VALUES (" + quoted(*db_, o_.topic) + ", " +
          std::to_string(m.partition) + ", -1, " + quoted(*db_, reason) + ", " +
          quoted(*db_, payload.dump()) + ", UTC_TIMESTAMP(6))";
      if (!check(db_->exec(write)) || !check(db_->exec(record))) return kFailed;
    }
    return check(db_->exec("COMMIT")) ? 0 : kFailed;
  }

  static int fail(const std::string& message, int code) {
    std::cerr << "sluice: " << message << "\n";
    return code;
  }

  const Config& config_;
  const OffsetsOptions& o_;
  std::unique_ptr<ingest::KafkaRangeReader> kafka_;
  std::unique_ptr<storage::MariaDbConnection> db_;
  FleetReader fleet_{config_};
};

}  // namespace

int offsets_command(const OffsetsOptions& o) {
  auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return kUsage;
  }
  configure_logging("error", config->log.json);
  if (o.action == "set" && o.topic.empty()) {
    std::cerr << "sluice: offsets set: --topic is required\n";
    return kUsage;
  }
  Offsets offsets(*config, o);
  if (const int code = offsets.open()) return code;
  return o.action == "show" ? offsets.show() : offsets.set();
}

}  // namespace sluice::cli
