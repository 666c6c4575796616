#include "main/bench_command.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/logging.h"
#include "ingest/load_test.h"
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

/// 1234567 -> "1,234,567".
std::string grouped(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
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
  ingest::LoadTest load(
      registry, *schema, table,
      [&] { return std::make_unique<storage::MariaDbSink>(db, "sluice-bench", bookkeeping); },
      static_cast<size_t>(config->batch.max_bytes));

  const std::string where = db.socket.empty() ? db.host + ":" + std::to_string(db.port) : db.socket;
  if (!o.json) {
    std::cout << "sluice bench: " << schema->name << " revision " << schema->revision << " into `"
              << db.database << "`.`" << table.name() << "` on " << where << " ("
              << (db.insert_method == InsertMethod::kLoadData ? "load_data" : "multi_insert")
              << "), " << grouped(o.events) << " events per run\n\n"
              << "  batch rows  writers      rows/s   batch p50   batch p99\n";
  }
  ProgressBar bar(!o.json && isatty(STDERR_FILENO) != 0);
  std::vector<ingest::LoadTestResult> results;
  int code = 0;
  for (const size_t rows : o.batch_rows) {
    for (const size_t writers : o.writers) {
      // Every run starts on empty tables, so later runs do not pay for earlier ones' rows.
      if (!drop_scratch(db, scratch)) return 1;
      const std::string label =
          "batch " + std::to_string(rows) + " x " + std::to_string(writers) + " writers";
      auto r = load.run(rows, writers, o.events,
                        [&](uint64_t done) { bar.show(label, done, o.events); });
      if (!r.error.empty()) {
        std::cerr << "sluice bench: " << label << ": " << r.error << "\n";
        code = 1;
      }
      if (!o.json) {
        char line[128];
        std::snprintf(line, sizeof line, "  %10zu  %7zu  %10s  %7.1f ms  %7.1f ms%s\n", rows,
                      writers, grouped(static_cast<uint64_t>(r.rows_per_s)).c_str(), r.batch_p50_ms,
                      r.batch_p99_ms, r.error.empty() ? "" : "  FAILED");
        std::cout << line << std::flush;
      }
      results.push_back(std::move(r));
      if (code != 0) break;
    }
    if (code != 0) break;
  }
  const bool dropped = o.keep ? false : drop_scratch(db, scratch);

  const ingest::LoadTestResult* best = nullptr;
  for (const auto& r : results) {
    if (r.error.empty() && (best == nullptr || r.rows_per_s > best->rows_per_s)) best = &r;
  }
  const double backlog_s = best != nullptr && best->rows_per_s > 0
                               ? static_cast<double>(o.backlog) / best->rows_per_s
                               : 0;
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
      out["runs"].push_back(std::move(run));
    }
    if (best != nullptr) {
      out["best"] = {{"batch_rows", best->batch_rows},
                     {"writers", best->writers},
                     {"rows_per_s", best->rows_per_s}};
      out["backlog"] = {{"events", o.backlog}, {"drain_seconds", backlog_s}};
    }
    std::cout << out.dump(2) << "\n";
  } else {
    if (best != nullptr) {
      std::cout << "\nbest: batch.max_rows " << best->batch_rows << ", mariadb.writers "
                << best->writers << ": " << grouped(static_cast<uint64_t>(best->rows_per_s))
                << " rows/s\n"
                << "a backlog of " << grouped(o.backlog) << " events drains in about "
                << duration_text(backlog_s)
                << " at that rate (the database is the limit: reading the spool is much faster)\n";
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
