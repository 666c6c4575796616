#include "cli/replay_command.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/config.h"
#include "common/logging.h"
#include "common/text.h"
#include "ingest/kafka_range_reader.h"
#include "ingest/replay.h"
#include "ingest/replay_file.h"
#include "ingest/replica_lag.h"
#include "ingest/schema_repository.h"
#include "ingest/timestamp.h"
#include "cli/fleet_reader.h"
#include "storage/mariadb_sink.h"

namespace sluice::cli {
namespace {

using ingest::ReplayLedger;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void on_signal(int /*sig*/) { g_stop.store(true); }

constexpr milliseconds kKafkaTimeout{15'000};

std::string duration(double seconds) {
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(seconds) / 60,
                  static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  }
  return buf;
}

/// "0-3, 5, 7-9".
std::string partition_list(const std::vector<int32_t>& sorted) {
  std::string out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(sorted[i]);
    if (j > i) out += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out;
}

std::string range_text(int64_t from, int64_t to) {
  return "[" + std::to_string(from) + ", " + std::to_string(to) + ")";
}

/// Progress on stderr: on a terminal, a block redrawn in place — each partition's position
/// against its range, then the total with events/s and the time left; otherwise a plain line
/// every few seconds.
class ProgressView {
 public:
  ProgressView(bool tty, uint64_t expected) : tty_(tty), expected_(expected) {}

  /// `limit`: what holds the rate back now ("" when nothing does).
  void show(const ReplayLedger& ledger, bool final, const std::string& limit) {
    const auto now = Steady::now();
    const double elapsed = std::chrono::duration<double>(now - started_).count();
    const uint64_t done = ledger.durable();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    const uint64_t expected = std::max<uint64_t>(expected_, ledger.read());
    std::string eta = "-";
    if (rate > 0 && expected > done) eta = duration(static_cast<double>(expected - done) / rate);
    if (tty_) {
      draw(ledger, done, expected, rate, eta, final, limit);
      return;
    }
    if (!final && now - last_line_ < std::chrono::seconds(5)) return;
    last_line_ = now;
    size_t finished = 0;
    for (const auto& [key, p] : ledger.partitions()) {
      if (p.to >= 0 && p.covered_end() >= p.to) ++finished;
    }
    std::fprintf(stderr,
                 "replay: %s of %s events done (%d%%), %s events/s, %s left; %zu of %zu "
                 "partitions done%s\n",
                 thousands(done).c_str(), thousands(expected).c_str(), percent(done, expected),
                 thousands(static_cast<uint64_t>(rate)).c_str(), eta.c_str(), finished,
                 ledger.partitions().size(), limit.empty() ? "" : ("; " + limit).c_str());
  }

 private:
  static int percent(uint64_t done, uint64_t total) {
    return total == 0 ? 100 : static_cast<int>(std::min<uint64_t>(100, 100 * done / total));
  }
  static std::string bar(uint64_t done, uint64_t total) {
    constexpr int kWidth = 24;
    const int filled =
        total == 0 ? kWidth : static_cast<int>(kWidth * std::min(done, total) / total);
    return "[" + std::string(static_cast<size_t>(filled), '#') +
           std::string(static_cast<size_t>(kWidth - filled), '.') + "]";
  }

  void draw(const ReplayLedger& ledger, uint64_t done, uint64_t expected, double rate,
            const std::string& eta, bool final, const std::string& limit) {
    constexpr size_t kMaxPartitionLines = 12;
    std::string out;
    if (lines_ > 0) out += "\x1b[" + std::to_string(lines_) + "F";  // back to the block's top
    size_t lines = 0;
    size_t shown = 0;
    char buf[256];
    for (const auto& [key, p] : ledger.partitions()) {
      if (shown++ == kMaxPartitionLines) {
        std::snprintf(buf, sizeof buf, "\x1b[2K  ... and %zu more partitions\n",
                      ledger.partitions().size() - kMaxPartitionLines);
        out += buf;
        ++lines;
        break;
      }
      const std::string name = p.topic + "/" + std::to_string(p.partition);
      if (p.to >= 0 && p.from >= 0) {
        const int64_t at = std::max(p.from, p.read_next);
        const auto span = static_cast<uint64_t>(std::max<int64_t>(0, p.to - p.from));
        const auto pos = static_cast<uint64_t>(std::max<int64_t>(0, at - p.from));
        std::snprintf(buf, sizeof buf, "\x1b[2K  %-30s %s %3d%%  offset %lld of [%lld, %lld)\n",
                      name.c_str(), bar(pos, span).c_str(), percent(pos, span),
                      static_cast<long long>(at), static_cast<long long>(p.from),
                      static_cast<long long>(p.to));
      } else {
        std::snprintf(buf, sizeof buf, "\x1b[2K  %-30s %s events read\n", name.c_str(),
                      thousands(p.read).c_str());
      }
      out += buf;
      ++lines;
    }
    std::snprintf(buf, sizeof buf, "\x1b[2K  %-30s %s %3d%%  %s of %s, %s events/s, %s left%s\n",
                  "total", bar(done, expected).c_str(), percent(done, expected),
                  thousands(done).c_str(), thousands(expected).c_str(),
                  thousands(static_cast<uint64_t>(rate)).c_str(), final ? "0 s" : eta.c_str(),
                  limit.empty() ? "" : ("; " + limit).c_str());
    out += buf;
    ++lines;
    lines_ = lines;
    std::fputs(out.c_str(), stderr);
    std::fflush(stderr);
  }

  bool tty_;
  uint64_t expected_;
  Steady::time_point started_ = Steady::now();
  Steady::time_point last_line_ = Steady::now();
  size_t lines_ = 0;
};

/// What the replay will do, said before it starts.
struct Plan {
  bool from_file = false;
  std::string topic;
  std::vector<ingest::PartitionRange> ranges;  ///< Kafka
  uint64_t events = 0;
  std::string where;  ///< "database D on host H (user U)"
};

void print_plan(const Plan& plan, const ReplayOptions& o, std::ostream& out) {
  if (plan.from_file) {
    out << "sluice replay: " << thousands(plan.events) << " event(s) from " << o.from_file
        << ", into " << plan.where << "\n";
  } else {
    std::vector<int32_t> ids;
    for (const auto& r : plan.ranges) ids.push_back(r.partition);
    out << "sluice replay: partition" << (ids.size() == 1 ? " " : "s ") << partition_list(ids)
        << " of " << plan.topic << ", about " << thousands(plan.events) << " event(s), into "
        << plan.where << "\n";
    for (const auto& r : plan.ranges) {
      out << "  " << r.topic << "/" << r.partition << "  offsets " << range_text(r.from, r.to)
          << "  " << thousands(static_cast<uint64_t>(r.events())) << " event(s)";
      if (r.expired_to > r.expired_from) {
        out << "; " << range_text(r.expired_from, r.expired_to)
            << " expired from Kafka: cannot be read";
      }
      if (r.may_have_expired) {
        out << "; the log starts at " << r.from
            << " now: older events of the window may have expired";
      }
      out << "\n";
    }
  }
  if (!o.schemas.empty()) {
    out << "  only schema(s):";
    for (const auto& s : o.schemas) out << " " << s;
    out << "\n";
  }
  if (o.dry_run) out << "  dry run: nothing will be written\n";
}

nlohmann::json summary_json(const ReplayLedger& ledger, const Plan& plan, const ReplayOptions& o,
                            const std::string& outcome, int exit_code, const std::string& error,
                            double seconds,
                            const std::map<std::string, double>& held_back = {}) {
  const auto totals = ledger.totals();
  nlohmann::json j = {
      {"outcome", outcome},
      {"exit_code", exit_code},
      {"dry_run", o.dry_run},
      {"source", plan.from_file ? "file" : "kafka"},
      {"target", plan.where},
      {"seconds", seconds},
      {"events_per_s", seconds > 0 ? static_cast<double>(ledger.durable()) / seconds : 0.0},
      {"read", ledger.read()},
      {"written", totals.written},
      {"already_present", totals.already_present},
      {"dead_lettered", totals.dead_lettered},
      {"skipped", ledger.skipped()},
      {"dead_letter_mark", std::string(storage::kReplayMark)},
      // Seconds held back below what it could read, per cause (max_rate, commit_latency,
      // replica_lag).
      {"held_back_s", held_back}};
  if (plan.from_file) {
    j["file"] = o.from_file;
  } else {
    j["topic"] = plan.topic;
  }
  if (!error.empty()) j["error"] = error;
  j["tables"] = nlohmann::json::array();
  for (const auto& [name, t] : ledger.tables()) {
    j["tables"].push_back({{"table", name},
                           {"read", t.read},
                           {"written", t.written},
                           {"already_present", t.already_present},
                           {"dead_lettered", t.dead_lettered}});
  }
  j["partitions"] = nlohmann::json::array();
  j["expired"] = nlohmann::json::array();
  for (const auto& [key, p] : ledger.partitions()) {
    nlohmann::json e = nlohmann::json::array();
    for (const auto& [from, to] : p.expired) {
      e.push_back({{"from", from}, {"to", to}, {"offsets", to - from}});
      j["expired"].push_back({{"topic", p.topic},
                              {"partition", p.partition},
                              {"from", from},
                              {"to", to},
                              {"offsets", to - from}});
    }
    nlohmann::json part = {{"topic", p.topic},
                           {"partition", p.partition},
                           {"from", p.from},
                           {"to", p.to},
                           {"read", p.read},
                           {"skipped", p.skipped},
                           {"covered", {{"from", p.from}, {"to", p.covered_end()}}},
                           {"expired", e}};
    if (p.may_have_expired) part["may_have_expired_before"] = p.from;
    j["partitions"].push_back(part);
  }
  return j;
}

void print_summary(const ReplayLedger& ledger, const Plan& plan, const ReplayOptions& o,
                   const std::string& outcome, const std::string& error, double seconds,
                   const std::map<std::string, double>& held_back) {
  const auto totals = ledger.totals();
  std::printf("\nreplay %s%s in %.1f s (%s events/s)%s\n", outcome.c_str(),
              error.empty() ? "" : (": " + error).c_str(), seconds,
              thousands(static_cast<uint64_t>(
                            seconds > 0 ? static_cast<double>(ledger.durable()) / seconds : 0))
                  .c_str(),
              o.dry_run ? " — dry run: what would be written; nothing was" : "");
  for (const auto& [cause, held] : held_back) {
    std::printf("  held back by %s for %.1f s\n", cause.c_str(), held);
  }
  std::printf("\n  %-36s %12s %12s %16s %14s\n", "table", "read", "written", "already present",
              "dead-lettered");
  for (const auto& [name, t] : ledger.tables()) {
    std::printf("  %-36s %12s %12s %16s %14s\n", name.c_str(), thousands(t.read).c_str(),
                thousands(t.written).c_str(), thousands(t.already_present).c_str(),
                thousands(t.dead_lettered).c_str());
  }
  std::printf("  %-36s %12s %12s %16s %14s\n", "total", thousands(totals.read).c_str(),
              thousands(totals.written).c_str(), thousands(totals.already_present).c_str(),
              thousands(totals.dead_lettered).c_str());
  if (ledger.skipped() > 0) {
    std::printf("  skipped (other schemas): %s\n", thousands(ledger.skipped()).c_str());
  }
  if (totals.dead_lettered > 0) {
    std::printf("  dead letters %s to sluice_dead_letter end with \"%s\"\n",
                o.dry_run ? "that would go" : "written", std::string(storage::kReplayMark).c_str());
  }
  std::printf("\n  offsets covered (read, and in MariaDB)\n");
  for (const auto& [key, p] : ledger.partitions()) {
    const std::string name = p.topic + "/" + std::to_string(p.partition);
    std::printf("  %-36s %s  %s read%s\n", name.c_str(),
                p.from < 0 ? "-" : range_text(p.from, p.covered_end()).c_str(),
                thousands(p.read).c_str(),
                p.to >= 0 && p.covered_end() < p.to
                    ? (", not covered: " + range_text(p.covered_end(), p.to)).c_str()
                    : "");
  }
  if (ledger.any_expired() ||
      std::any_of(ledger.partitions().begin(), ledger.partitions().end(),
                  [](const auto& kv) { return kv.second.may_have_expired; })) {
    std::printf("\n  EXPIRED FROM KAFKA before this replay could read them (not replayed):\n");
    for (const auto& [key, p] : ledger.partitions()) {
      for (const auto& [from, to] : p.expired) {
        std::printf("  %s/%d offsets %s: %s offset(s)\n", p.topic.c_str(), p.partition,
                    range_text(from, to).c_str(),
                    thousands(static_cast<uint64_t>(to - from)).c_str());
      }
      if (p.may_have_expired) {
        std::printf(
            "  %s/%d: the log starts at offset %lld; events of the asked time window "
            "may have been among the older, expired ones\n",
            p.topic.c_str(), p.partition, static_cast<long long>(p.from));
      }
    }
  }
  (void)plan;
  std::fflush(stdout);
}

/// Parses an ISO-8601 option into epoch milliseconds; false after saying why.
bool parse_time(const std::string& option, const std::string& text, int64_t& ms) {
  const auto seconds = ingest::epoch_seconds_from_iso8601(text);
  if (!seconds) {
    std::cerr << "sluice replay: " << option << " '" << text
              << "' is not an ISO-8601 date-time (e.g. 2024-05-01T13:00:00Z)\n";
    return false;
  }
  ms = *seconds * 1000;
  return true;
}

int usage(const std::string& message) {
  std::cerr << "sluice replay: " << message << "\n";
  return kReplayUsage;
}

}  // namespace

int replay_command(const ReplayOptions& o) {
  // --- Arguments.
  using ingest::ReplayBound;
  ReplayBound from, to;
  const bool from_file = !o.from_file.empty();
  const int starts = (o.from_time.empty() ? 0 : 1) + (o.has_from_offset ? 1 : 0);
  const int ends = (o.to_time.empty() ? 0 : 1) + (o.has_to_offset ? 1 : 0);
  if (from_file) {
    if (starts + ends > 0) {
      return usage("--from-file replays the whole file; --from-*/--to-* select a range of Kafka");
    }
  } else {
    if (o.topic.empty()) return usage("--topic is required (or --from-file F)");
    if (starts != 1) return usage("give exactly one start: --from-time ISO8601 or --from-offset N");
    if (ends > 1) return usage("give at most one end: --to-time ISO8601 or --to-offset N");
    if (!o.from_time.empty()) {
      int64_t ms = 0;
      if (!parse_time("--from-time", o.from_time, ms)) return kReplayUsage;
      from = ReplayBound::time_ms(ms);
    } else {
      from = ReplayBound::offset(o.from_offset);
    }
    if (!o.to_time.empty()) {
      int64_t ms = 0;
      if (!parse_time("--to-time", o.to_time, ms)) return kReplayUsage;
      to = ReplayBound::time_ms(ms);
    } else if (o.has_to_offset) {
      to = ReplayBound::offset(o.to_offset);
    }
    if (from.kind == to.kind && to.value < from.value) {
      return usage(from.kind == ReplayBound::Kind::kOffset
                       ? "--to-offset " + std::to_string(o.to_offset) +
                             " is before --from-offset " + std::to_string(o.from_offset)
                       : "--to-time " + o.to_time + " is before --from-time " + o.from_time);
    }
    if (o.has_from_offset && o.from_offset < 0) return usage("--from-offset must not be negative");
    if (o.has_to_offset && o.to_offset < 0) return usage("--to-offset must not be negative");
  }
  for (const int32_t p : o.partitions) {
    if (p < 0) return usage("--partition must not be negative, got " + std::to_string(p));
  }
  auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return kReplayUsage;
  }
  if (!o.target_database.empty()) config->mariadb.database = o.target_database;
  const std::string level = config->log.level;
  configure_logging(level == "info" ? "warn" : level, config->log.json);

  // --- What to read.
  Plan plan;
  plan.from_file = from_file;
  plan.topic = o.topic;
  plan.where = "database " + config->mariadb.database + " on " +
               (config->mariadb.socket.empty()
                    ? "host " + config->mariadb.host + ":" + std::to_string(config->mariadb.port)
                    : "socket " + config->mariadb.socket) +
               " (user " + config->mariadb.user + ")";
  std::unique_ptr<ingest::ReplayInput> input;
  ReplayLedger ledger;
  if (from_file) {
    auto count = ingest::JsonLinesInput::count_events(o.from_file);
    if (!count) return usage(count.status().message());
    plan.events = *count;
    auto file = ingest::JsonLinesInput::open(
        o.from_file, o.topic, std::set<int32_t>(o.partitions.begin(), o.partitions.end()));
    if (!file) return usage(file.status().message());
    input = std::move(file).value();
  } else {
    auto reader = ingest::KafkaRangeReader::create(config->kafka);
    if (!reader) {
      std::cerr << "sluice replay: " << reader.status().message() << "\n";
      return kReplayFailed;
    }
    std::vector<int32_t> all;
    bool unknown_topic = false;
    if (auto st = (*reader)->partitions(o.topic, all, kKafkaTimeout, unknown_topic); !st) {
      std::cerr << "sluice replay: " << st.message() << "\n";
      return unknown_topic ? kReplayUsage : kReplayFailed;
    }
    std::vector<int32_t> selected = all;
    if (!o.partitions.empty()) {
      const std::set<int32_t> asked(o.partitions.begin(), o.partitions.end());
      selected.assign(asked.begin(), asked.end());
      for (const int32_t p : selected) {
        if (std::find(all.begin(), all.end(), p) == all.end()) {
          return usage("topic " + o.topic + " has no partition " + std::to_string(p) + " (it has " +
                       partition_list(all) + ")");
        }
      }
    }
    std::vector<ingest::PartitionFacts> facts;
    for (const int32_t p : selected) {
      ingest::PartitionFacts f;
      f.partition = p;
      if (auto st = (*reader)->watermarks(o.topic, p, f.low, f.high, kKafkaTimeout); !st) {
        std::cerr << "sluice replay: " << st.message() << "\n";
        return kReplayFailed;
      }
      facts.push_back(f);
    }
    for (const auto& [bound, field] : {std::pair{from, &ingest::PartitionFacts::from_time_offset},
                                       std::pair{to, &ingest::PartitionFacts::to_time_offset}}) {
      if (bound.kind != ReplayBound::Kind::kTime) continue;
      std::vector<int64_t> offsets;
      if (auto st =
              (*reader)->offsets_for_times(o.topic, selected, bound.value, offsets, kKafkaTimeout);
          !st) {
        std::cerr << "sluice replay: " << st.message() << "\n";
        return kReplayFailed;
      }
      for (size_t i = 0; i < facts.size(); ++i) facts[i].*field = offsets[i];
    }
    auto ranges = ingest::resolve_ranges(o.topic, from, to, facts);
    if (!ranges) return usage(ranges.status().message());
    plan.ranges = std::move(ranges).value();
    for (const auto& r : plan.ranges) {
      plan.events += static_cast<uint64_t>(r.events());
      ledger.expect(r);
    }
    if (auto st = (*reader)->start(plan.ranges); !st) {
      std::cerr << "sluice replay: " << st.message() << "\n";
      return kReplayFailed;
    }
    input = std::move(reader).value();
  }

  // --- Say what it will do; refuse what is wider than the bound without --confirm.
  print_plan(plan, o, std::cerr);
  const auto bound = config->replay.confirm_above_events;
  if (!o.dry_run && !o.confirm && static_cast<int64_t>(plan.events) > bound) {
    std::cerr << "refused: about " << thousands(plan.events)
              << " events is more than replay.confirm_above_events (" << thousands(bound) << ") of "
              << o.config_path
              << ". Check the plan above (or run it with --dry-run first), then run again with "
                 "--confirm.\n";
    if (o.json) {
      auto j = summary_json(ledger, plan, o, "refused", kReplayRefused, "", 0);
      j["events"] = plan.events;
      j["confirm_above_events"] = bound;
      std::cout << j.dump() << "\n";
    }
    return kReplayRefused;
  }

  // --- The fleet: a pause means nothing writes to this server, a replay included.
  if (!o.dry_run && !o.during_pause && !from_file) {
    FleetReader fleet(*config);
    if (fleet.open_and_catch_up(*config) != 0) {
      std::cerr << "refused: the fleet topic " << config->fleet.topic
                << " cannot be read, so whether the fleet is paused is not known; run it with "
                   "--during-pause if it must\n";
      return kReplayRefused;
    }
    if (fleet.view().target() && fleet.view().target()->paused) {
      std::cerr << "refused: the fleet is paused (\"" << fleet.view().target()->reason
                << "\" by " << fleet.view().target()->by
                << "): a pause means nothing writes to MariaDB. Run it after `sluice resume`, or "
                   "with --during-pause if it must (e.g. into another database).\n";
      return kReplayRefused;
    }
  }

  // --- The database: the service's sink, in a replay mode.
  const auto mode = o.dry_run ? storage::SinkMode::kReplayDryRun : storage::SinkMode::kReplay;
  const auto mariadb = config->mariadb;
  const auto group = config->kafka.group_id;
  auto make_sink = [mariadb, group, mode] {
    return std::make_unique<storage::MariaDbSink>(mariadb, group, storage::BookkeepingTables{},
                                                  mode);
  };
  {
    auto sink = make_sink();
    if (auto st = sink->probe(); !st.is_ok()) {
      std::cerr << "sluice replay: cannot use MariaDB (" << plan.where << "): " << st.describe()
                << "\n";
      return kReplayFailed;
    }
    // Where the service stands in this database: what lies past it is the service's to write,
    // and it will find there whatever this replay writes.
    std::map<int32_t, int64_t> service;
    if (!from_file && !o.dry_run && sink->read_offsets(o.topic, service).is_ok()) {
      for (const auto& r : plan.ranges) {
        const auto it = service.find(r.partition);
        if (it == service.end() || it->second >= r.to || r.events() == 0) continue;
        std::cerr << "note: the service (group " << group << ") stands at offset " << it->second
                  << " of " << r.topic << "/" << r.partition << " in this database, below this "
                  << "replay's end " << r.to << ": it reads " << range_text(it->second, r.to)
                  << " again itself when it runs, and records the events this replay writes "
                     "there as duplicate_uuid dead letters (see docs/operations.md, restore "
                     "from a backup)\n";
      }
    }
  }

  // --- Run.
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  ingest::SchemaRegistry registry(config->schemas_path);
  // Revisions are read from where the service keeps what it fetched, or fetched as the service
  // does: an event of a revision not fetched yet waits for the repository's answer.
  std::unique_ptr<ingest::SchemaRepository> repository;
  if (const auto& repo = config->schema_repository; !repo.url.empty()) {
    repository = std::make_unique<ingest::SchemaRepository>(ingest::SchemaRepositoryOptions{
        .url = repo.url,
        .ca_file = repo.ca_file,
        .timeout = std::chrono::milliseconds(repo.timeout_ms)});
    registry.use_repository(repository.get(), repo.cache_path);
  }
  ingest::ReplayOptions options;
  options.limits = {static_cast<size_t>(config->batch.max_rows),
                    static_cast<size_t>(config->batch.max_bytes),
                    milliseconds(config->batch.max_delay_ms)};
  options.writers = static_cast<size_t>(config->mariadb.writers);
  options.schemas.insert(o.schemas.begin(), o.schemas.end());
  options.max_rate = static_cast<double>(o.max_rate >= 0 ? o.max_rate : config->drain.max_rate);
  if (options.max_rate > 0) {
    std::cerr << "reading at most " << thousands(static_cast<uint64_t>(options.max_rate))
              << " events/s\n";
  }
  // The replicas' lag, followed as the drain follows it (drain.max_replica_lag_s).
  std::unique_ptr<ingest::ReplicaLagProbe> replicas;
  if (!o.dry_run && !config->replicas.empty() && config->drain.max_replica_lag_s > 0) {
    replicas = std::make_unique<ingest::ReplicaLagProbe>(config->mariadb, config->replicas);
    options.max_replica_lag_s = static_cast<double>(config->drain.max_replica_lag_s);
    options.replica_lag = [&replicas] { return replicas->lag(); };
    std::cerr << "following the replicas' lag (at most " << config->drain.max_replica_lag_s
              << " s)\n";
  }
  ingest::Replay replay(registry, make_sink, options);
  ProgressView view(isatty(STDERR_FILENO) == 1, plan.events);
  const auto started = Steady::now();
  std::string error;
  const auto end = replay.run(
      *input, ledger, g_stop,
      [&view, &replay, &replicas](const ReplayLedger& l, bool final) {
        if (replicas) {
          std::vector<std::string> tables;
          for (const auto& [name, counts] : l.tables()) tables.push_back(name);
          replicas->follow(std::move(tables));
        }
        const auto& g = replay.governor();
        std::string limit;
        if (g.limiting() != ingest::DrainGovernor::Limit::kNone && g.rate() > 0) {
          limit = std::string("limited by ") +
                  ingest::DrainGovernor::limit_name(g.limiting()) + " to " +
                  thousands(static_cast<uint64_t>(g.rate())) + " events/s";
        }
        if (g.last_replica_lag()) {
          char lag[64];
          std::snprintf(lag, sizeof lag, "%sreplica lag %.1f s", limit.empty() ? "" : ", ",
                        *g.last_replica_lag());
          limit += lag;
        }
        view.show(l, final, limit);
      },
      error);
  const double seconds = std::chrono::duration<double>(Steady::now() - started).count();

  // --- Summary and exit code.
  std::string outcome;
  int code = kReplayComplete;
  switch (end) {
    case ingest::ReplayEnd::kComplete:
      outcome = "complete";
      if (ledger.any_expired()) {
        code = kReplayExpired;
      } else if (ledger.totals().dead_lettered > 0) {
        code = kReplayDeadLettered;
      }
      break;
    case ingest::ReplayEnd::kInterrupted:
      outcome = "interrupted";
      code = kReplayInterrupted;
      break;
    case ingest::ReplayEnd::kFailed:
      outcome = "failed";
      code = kReplayFailed;
      break;
  }
  if (o.json) {
    std::cout << summary_json(ledger, plan, o, outcome, code, error, seconds, replay.held_back())
                     .dump()
              << "\n";
  } else {
    print_summary(ledger, plan, o, outcome, error, seconds, replay.held_back());
  }
  return code;
}

}  // namespace sluice::cli
