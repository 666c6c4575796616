#include "cli/bench_command.h"

#include <mysqld_error.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/config.h"
#include "common/logging.h"
#include "common/text.h"
#include "ingest/drain_governor.h"
#include "loadtest/load_test.h"
#include "ingest/schema.h"
#include "storage/mariadb_connection.h"
#include "storage/mariadb_sink.h"

namespace sluice::cli {
namespace {

constexpr std::string_view kScratchPrefix = "sluice_bench_";

/// The highest revision with a file under <root>/<schema>/, or 0.
int64_t newest_revision(const std::string& root, const std::string& schema) {
  int64_t newest = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root + "/" + schema, ec)) {
    if (entry.path().extension() != ".json") continue;
    try {
      newest = std::max<int64_t>(newest, std::stoll(entry.path().stem().string()));
    } catch (const std::exception&) {
      // not a revision file
    }
  }
  return newest;
}

std::string duration_text(double seconds) {
  char buf[64];
  if (seconds < 90) {
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  } else if (seconds < 5400) {
    std::snprintf(buf, sizeof buf, "%.0f min %02.0f s", std::floor(seconds / 60),
                  std::fmod(seconds, 60));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  }
  return buf;
}

/// A one-line progress bar on a terminal; silent otherwise (logs and pipes stay clean).
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void show(const std::string& label, uint64_t done, uint64_t total) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int kWidth = 30;
    const int filled = total == 0 ? kWidth : static_cast<int>(kWidth * done / total);
    std::fprintf(stderr, "\r  %-28s [%s%s] %3d%%", label.c_str(), std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, ' ').c_str(),
                 total == 0 ? 100 : static_cast<int>(100 * done / total));
    if (done >= total) std::fprintf(stderr, "\r%80s\r", "");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point last_{};
};

/// Drops the scratch tables; returns false (having said why) when the server refused.
bool drop_scratch(const MariaDbConfig& config, const std::vector<std::string>& tables) {
  std::unique_ptr<storage::MariaDbConnection> conn;
  auto st = storage::MariaDbConnection::open(config, conn);
  for (const auto& t : tables) {
    if (st.is_ok()) st = conn->exec("DROP TABLE IF EXISTS " + storage::quote_identifier(t));
  }
  if (!st.is_ok()) {
    std::cerr << "sluice bench: could not drop the scratch tables: " << st.message << "\n";
    return false;
  }
  return true;
}

/// What marks one run's rows in `table`: its first and last uuid, and the last id.
struct RunMark {
  std::string first_uuid, last_uuid;
  int64_t last_id = 0;
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }  // uuids: hex only

/// Reads the marks of the run just written on the primary; false (error set) on failure.
bool run_mark(storage::MariaDbConnection& conn, const std::string& table, RunMark& mark,
              std::string& error) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  const std::string t = storage::quote_identifier(table);
  const auto st =
      conn.query("SELECT (SELECT uuid FROM " + t + " ORDER BY id LIMIT 1), (SELECT uuid FROM " + t +
                     " ORDER BY id DESC LIMIT 1), (SELECT MAX(id) FROM " + t + ")",
                 rows);
  if (!st.is_ok() || rows.empty() || !rows[0][0] || !rows[0][1] || !rows[0][2]) {
    error = st.is_ok() ? "no rows" : st.describe();
    return false;
  }
  mark = {*rows[0][0], *rows[0][1], std::stoll(*rows[0][2])};
  return true;
}

/// How a replica followed one run: how far behind it still was when the run ended, and the
/// rate at which it applied the run's rows (run time plus catching up).
struct ReplicaFollow {
  std::string endpoint;
  std::string error;
  bool caught_up = false;
  double behind_at_end_s = 0;  ///< time from the run's end until it held the last row
  double apply_rows_per_s = 0;
};

/// Waits (at most `timeout`) until every replica holds the run's last row, looking at all of
/// them in turn every 50 ms. The table has the same name every run (dropped in between), so a
/// run is told by its uuids, never by ids.
std::vector<ReplicaFollow> follow_replicas(const std::vector<MariaDbConfig>& replicas,
                                           const std::string& table, const RunMark& mark,
                                           uint64_t rows, double run_seconds,
                                           std::chrono::steady_clock::time_point ended,
                                           std::chrono::seconds timeout) {
  std::vector<ReplicaFollow> out(replicas.size());
  std::vector<std::unique_ptr<storage::MariaDbConnection>> conns(replicas.size());
  std::vector<bool> done(replicas.size(), false);
  for (size_t i = 0; i < replicas.size(); ++i) {
    out[i].endpoint = describe_endpoint(replicas[i]);
    if (auto st = storage::MariaDbConnection::open(replicas[i], conns[i]); !st.is_ok()) {
      out[i].error = st.describe();
      done[i] = true;
    }
  }
  const std::string t = storage::quote_identifier(table);
  const std::string sql = "SELECT (SELECT COUNT(*) FROM " + t +
                          " WHERE uuid = " + quoted(mark.last_uuid) + "), (SELECT COUNT(*) FROM " +
                          t + " WHERE uuid = " + quoted(mark.first_uuid) +
                          "), (SELECT MAX(id) FROM " + t + ")";
  std::vector<std::vector<std::optional<std::string>>> found;
  for (;;) {
    bool all_done = true;
    for (size_t i = 0; i < replicas.size(); ++i) {
      if (done[i]) continue;
      ReplicaFollow& f = out[i];
      const auto st = conns[i]->query(sql, found);
      bool has_last = false, has_first = false;
      int64_t at = 0;
      if (st.is_ok() && !found.empty()) {
        has_last = found[0][0] && *found[0][0] != "0";
        has_first = found[0][1] && *found[0][1] != "0";
        at = found[0][2] ? std::stoll(*found[0][2]) : 0;
      } else if (st.code != ER_NO_SUCH_TABLE) {  // not replicated yet: nothing applied
        f.error = st.describe();
        done[i] = true;
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      f.behind_at_end_s = std::chrono::duration<double>(now - ended).count();
      if (has_last) {
        f.caught_up = true;
        f.apply_rows_per_s = static_cast<double>(rows) / (run_seconds + f.behind_at_end_s);
        done[i] = true;
        continue;
      }
      if (now - ended > timeout) {
        // Not caught up: the share of this run's rows it holds so far.
        const double applied =
            has_first && mark.last_id > 0
                ? static_cast<double>(rows) *
                      std::min(1.0, static_cast<double>(at) / static_cast<double>(mark.last_id))
                : 0;
        f.apply_rows_per_s = applied / (run_seconds + f.behind_at_end_s);
        done[i] = true;
        continue;
      }
      all_done = false;
    }
    if (all_done) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

int bench_command(const BenchOptions& o) {
  auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  configure_logging(config->log.level, config->log.json);
  const int64_t revision =
      o.revision > 0 ? o.revision : newest_revision(config->schemas_path, o.schema);
  ingest::SchemaRegistry registry(config->schemas_path);
  std::string error;
  const ingest::Schema* schema = registry.find(o.schema, revision, error);
  if (schema == nullptr) {
    std::cerr << "sluice bench: " << (error.empty() ? "no schema " + o.schema : error) << " (in "
              << config->schemas_path << ")\n";
    return 2;
  }
  const storage::TableLayout table(std::string(kScratchPrefix) + schema->table->name(),
                                   schema->table->event_columns());
  const storage::BookkeepingTables bookkeeping{std::string(kScratchPrefix) + "offsets",
                                               std::string(kScratchPrefix) + "dead_letter"};
  const std::vector<std::string> scratch{table.name(), bookkeeping.offsets,
                                         bookkeeping.dead_letter};
  const MariaDbConfig db = config->mariadb;
  loadtest::LoadTest load(
      registry, *schema, table,
      [&] { return std::make_unique<storage::MariaDbSink>(db, "sluice-bench", bookkeeping); },
      static_cast<size_t>(config->batch.max_bytes));

  const std::string where = db.socket.empty() ? db.host + ":" + std::to_string(db.port) : db.socket;
  if (!o.json) {
    std::cout << "sluice bench: " << schema->name << " revision " << schema->revision << " into `"
              << db.database << "`.`" << table.name() << "` on " << where << " ("
              << (db.insert_method == InsertMethod::kLoadData ? "load_data" : "multi_insert")
              << "), " << thousands(o.events) << " events per run\n\n"
              << "  batch rows  writers      rows/s   batch p50   batch p99\n";
  }
  ProgressBar bar(!o.json && isatty(STDERR_FILENO) != 0);
  std::vector<loadtest::LoadTestResult> results;
  // With replicas configured, each run is followed on them too: how long they take to hold its
  // last row — the operator's real question is a drain that does not push them past
  // drain.max_replica_lag_s.
  std::vector<std::vector<ReplicaFollow>> follows;
  int code = 0;
  for (const size_t rows : o.batch_rows) {
    for (const size_t writers : o.writers) {
      // Every run starts on empty tables, so later runs do not pay for earlier ones' rows.
      if (!drop_scratch(db, scratch)) return 1;
      const std::string label =
          "batch " + std::to_string(rows) + " x " + std::to_string(writers) + " writers";
      auto r = load.run(rows, writers, o.events,
                        [&](uint64_t done) { bar.show(label, done, o.events); });
      const auto ended = std::chrono::steady_clock::now();
      if (!r.error.empty()) {
        std::cerr << "sluice bench: " << label << ": " << r.error << "\n";
        code = 1;
      }
      std::vector<ReplicaFollow> followed;
      if (!config->replicas.empty() && r.error.empty()) {
        std::unique_ptr<storage::MariaDbConnection> primary;
        std::string error;
        RunMark mark;
        bool marked = false;
        if (auto st = storage::MariaDbConnection::open(db, primary); st.is_ok()) {
          marked = run_mark(*primary, table.name(), mark, error);
        } else {
          error = st.describe();
        }
        const auto timeout =
            std::chrono::seconds(std::max<int64_t>(30, static_cast<int64_t>(3 * r.seconds)));
        if (marked) {
          followed = follow_replicas(config->replicas, table.name(), mark, r.rows, r.seconds, ended,
                                     timeout);
        } else {
          for (const auto& replica : config->replicas) {
            followed.push_back({describe_endpoint(replica), "primary: " + error});
          }
        }
      }
      if (!o.json) {
        char line[128];
        std::snprintf(line, sizeof line, "  %10zu  %7zu  %10s  %7.1f ms  %7.1f ms%s", rows, writers,
                      thousands(static_cast<uint64_t>(r.rows_per_s)).c_str(), r.batch_p50_ms,
                      r.batch_p99_ms, r.error.empty() ? "" : "  FAILED");
        std::cout << line;
        for (const auto& f : followed) {
          if (!f.error.empty()) {
            std::cout << "  replica " << f.endpoint << ": " << f.error;
          } else {
            std::snprintf(line, sizeof line, "  replica %s %.1f s behind at the end%s",
                          f.endpoint.c_str(), f.behind_at_end_s,
                          f.caught_up ? "" : " (still catching up)");
            std::cout << line;
          }
        }
        std::cout << "\n" << std::flush;
      }
      follows.push_back(std::move(followed));
      results.push_back(std::move(r));
      if (code != 0) break;
    }
    if (code != 0) break;
  }
  const bool dropped = o.keep ? false : drop_scratch(db, scratch);

  const loadtest::LoadTestResult* best = nullptr;
  size_t best_index = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (r.error.empty() && (best == nullptr || r.rows_per_s > best->rows_per_s)) {
      best = &r;
      best_index = i;
    }
  }
  const double backlog_s = best != nullptr && best->rows_per_s > 0
                               ? static_cast<double>(o.backlog) / best->rows_per_s
                               : 0;
  // The replicas at the best run's rate: if the slowest fell further behind than the drain
  // allows, a drain is held to its pace (the governor follows their lag).
  const double max_lag = static_cast<double>(config->drain.max_replica_lag_s);
  const ReplicaFollow* slowest = nullptr;
  bool replicas_known = best != nullptr && !follows[best_index].empty();
  if (replicas_known) {
    for (const auto& f : follows[best_index]) {
      if (!f.error.empty()) {
        replicas_known = false;
        break;
      }
      if (slowest == nullptr || f.apply_rows_per_s < slowest->apply_rows_per_s) slowest = &f;
    }
  }
  // Kept up: every replica held the run's last row, within the bound when one is set.
  bool replicas_keep_up = replicas_known;
  for (size_t i = 0; replicas_keep_up && i < follows[best_index].size(); ++i) {
    const auto& f = follows[best_index][i];
    replicas_keep_up = f.caught_up && (max_lag <= 0 || f.behind_at_end_s <= max_lag);
  }
  // Held to the replicas' pace — or, when one applied nothing at all, to the drain's floor.
  const double held_rate = !replicas_known || replicas_keep_up ? (best ? best->rows_per_s : 0)
                           : slowest->apply_rows_per_s > 0
                               ? std::min(best->rows_per_s, slowest->apply_rows_per_s)
                               : ingest::DrainGovernor::kMinRate;
  const double within_lag_s =
      !replicas_known || held_rate <= 0 ? 0 : static_cast<double>(o.backlog) / held_rate;
  if (o.json) {
    nlohmann::json out{{"schema", schema->name}, {"revision", schema->revision},
                       {"table", table.name()},  {"events_per_run", o.events},
                       {"kept", o.keep},         {"runs", nlohmann::json::array()}};
    for (const auto& r : results) {
      nlohmann::json run{{"batch_rows", r.batch_rows},
                         {"writers", r.writers},
                         {"events", r.events},
                         {"rows", r.rows},
                         {"batches", r.batches},
                         {"seconds", r.seconds},
                         {"rows_per_s", r.rows_per_s},
                         {"batch_p50_ms", r.batch_p50_ms},
                         {"batch_p99_ms", r.batch_p99_ms},
                         {"batch_max_ms", r.batch_max_ms}};
      if (!r.error.empty()) run["error"] = r.error;
      const auto& followed = follows[out["runs"].size()];
      if (!followed.empty()) {
        run["replicas"] = nlohmann::json::array();
        for (const auto& f : followed) {
          nlohmann::json one{{"endpoint", f.endpoint}};
          if (!f.error.empty()) {
            one["error"] = f.error;
          } else {
            one["caught_up"] = f.caught_up;
            one["behind_at_end_s"] = f.behind_at_end_s;
            one["apply_rows_per_s"] = f.apply_rows_per_s;
          }
          run["replicas"].push_back(std::move(one));
        }
      }
      out["runs"].push_back(std::move(run));
    }
    if (best != nullptr) {
      out["best"] = {{"batch_rows", best->batch_rows},
                     {"writers", best->writers},
                     {"rows_per_s", best->rows_per_s}};
      out["backlog"] = {{"events", o.backlog}, {"drain_seconds", backlog_s}};
      if (replicas_known) {
        out["backlog"]["max_replica_lag_s"] = max_lag;
        out["backlog"]["replicas_keep_up"] = replicas_keep_up;
        out["backlog"]["drain_seconds_within_replica_lag"] = within_lag_s;
      }
    }
    std::cout << out.dump(2) << "\n";
  } else {
    if (best != nullptr) {
      std::cout << "\nbest: batch.max_rows " << best->batch_rows << ", mariadb.writers "
                << best->writers << ": " << thousands(static_cast<uint64_t>(best->rows_per_s))
                << " rows/s\n"
                << "a backlog of " << thousands(o.backlog) << " events drains in about "
                << duration_text(backlog_s)
                << " at that rate (the database is the limit: reading the spool is much faster)\n";
      if (replicas_known && replicas_keep_up) {
        std::cout << "the replicas kept up (the slowest, " << slowest->endpoint << ", was "
                  << duration_text(slowest->behind_at_end_s) << " behind when the run ended"
                  << (max_lag > 0 ? ", within drain.max_replica_lag_s" : "") << ") over a run of "
                  << duration_text(best->seconds)
                  << "; a longer run (--events) tells how they keep up over time\n";
      } else if (replicas_known) {
        std::cout << "the replicas did not keep up: the slowest, " << slowest->endpoint << ", "
                  << (slowest->caught_up
                          ? "held the last row " + duration_text(slowest->behind_at_end_s) +
                                " after the run ended"
                          : "had not caught up " + duration_text(slowest->behind_at_end_s) +
                                " after the run ended")
                  << ", applying about "
                  << thousands(static_cast<uint64_t>(slowest->apply_rows_per_s))
                  << " rows/s;\nheld under drain.max_replica_lag_s (" << max_lag
                  << " s), the drain follows it at about "
                  << thousands(static_cast<uint64_t>(held_rate))
                  << " events/s: the backlog drains in about " << duration_text(within_lag_s)
                  << "\n";
      }
    }
    std::cout << (o.keep    ? "scratch tables kept: "
                  : dropped ? "scratch tables dropped: "
                            : "")
              << (o.keep || dropped ? table.name() + ", " + bookkeeping.offsets + ", " +
                                          bookkeeping.dead_letter + "\n"
                                    : "");
  }
  return code != 0 ? code : (o.keep || dropped ? 0 : 1);
}

}  // namespace sluice::cli
