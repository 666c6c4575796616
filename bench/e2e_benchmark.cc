// sluice-e2e-bench: the end-to-end benchmark on the local stack, one command (bench/e2e).
//
// Loads N production-shaped NavigationTiming events into a broker first — the test broker
// (librdkafka's mock cluster, instant to start), Apache Kafka (one KRaft node on loopback), or
// each of them in turn (--broker both) — then measures in one run, against one private MariaDB
// with durable settings (innodb_flush_log_at_trx_commit=1):
//   1. direct   `sluice run` ingesting the N events into an empty database;
//   2. drain    `sluice run` paused at start, spooling the N events, then resumed: the drain of
//               that backlog into another empty database, timed from resume;
//   3. replay   `sluice replay --from-offset 0` of the whole topic into a third empty database:
//               the same decode -> batch -> LOAD DATA path, read with its own assignment, and a
//               uuid lookup per batch on top; timed from start to exit;
//   4. ceiling  the server's own LOAD DATA INFILE of exactly the rows of (1), exported with
//               SELECT ... INTO OUTFILE, into an identical empty table;
//   5. peers    (--peers connect, Apache Kafka only) Kafka Connect's standalone worker with the
//               Debezium JDBC sink (upsert, primary.key.mode=kafka) writing the same events,
//               produced again into a topic of their own in Connect's JSON envelope (schema and
//               payload), into a table of the same shape in a fourth empty database; then the
//               direct run once more, so that Sluice is measured on both sides of the peer.
// and prints a table of rates, their ratios to the ceiling, peak RSS and CPU seconds per million
// events, and writes the same as JSON so runs can be compared over time. With --instances 1 2 3
// the direct run is repeated with two and three instances in one consumer group (a fleet; on
// a 2-core machine they share the CPU with MariaDB: the point is that nothing breaks or
// regresses, not linear scaling).

#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "admin/admin_client.h"
#include "ingest/timestamp.h"
#include "storage/rocksdb_spool.h"
#include "testing/harness.h"
#include "testing/kafka_cluster.h"

namespace {

using namespace std::chrono_literals;
using sluice::testing::Broker;
using sluice::testing::EventFactory;
using sluice::testing::KafkaCluster;
using sluice::testing::MariaDb;
using sluice::testing::Process;
using sluice::testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr const char* kTopic = "eventlogging_NavigationTiming";
constexpr const char* kTable = "NavigationTiming_15485142";
/// The same events in Kafka Connect's JSON envelope, for the Connect peer.
constexpr const char* kConnectTopic = "eventlogging_NavigationTiming_connect";

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double cpu_seconds(const struct rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// CPU seconds (user + system, all threads) a running process has used so far (/proc), or 0.
double proc_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  // After the name: state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Options {
  uint64_t events = 500'000;
  int partitions = 32;
  int writers = 2;
  int batch_rows = 5000;
  std::string broker = "mock";  ///< mock | kafka | both
  /// Direct runs with this many instances in one consumer group, each (1: the direct run).
  std::vector<int> instances = {1};
  /// Stages to leave out (drain, replay): a peer run needs only direct and LOAD DATA.
  std::vector<std::string> skip;
  /// Peers to run beside Sluice on Apache Kafka: connect (Kafka Connect + Debezium JDBC sink).
  std::vector<std::string> peers;
  /// The Debezium sink's batch.size and the worker's consumer max.poll.records (tried: 5000,
  /// 20000; bench/README.md).
  int connect_batch = 20000;
  /// The Debezium sink's tasks.max (default: --writers, Sluice's parallel writers).
  int connect_tasks = 0;
  /// Options of MariaDB's JDBC driver, appended to the sink's connection.url. Server-side
  /// prepared statements let the driver send a batch as one COM_STMT_BULK_EXECUTE; with its
  /// default (client-side) each row is a statement of its own.
  std::string connect_jdbc_options = "useServerPrepStmts=true";
  /// MariaDB as a new user meets it: the server's own defaults where the test servers differ
  /// (innodb_autoinc_lock_mode 1, a 128 MiB buffer pool, 96 MiB of redo log, no
  /// performance schema). Durability is the default either way.
  bool server_defaults = false;
  std::string insert_method = "load_data";  ///< mariadb.insert_method
  /// kafka.properties for Sluice's consumer, "key=value" each (librdkafka's tunables: the
  /// fetch queue's bounds, for a memory or throughput comparison).
  std::vector<std::string> kafka_properties;
  std::string json_path;
};

/// mariadbd options that undo, on the command line's last word, where scripts/dev-mariadb
/// departs from MariaDB 10.11's defaults.
constexpr const char* kServerDefaults =
    "--innodb-autoinc-lock-mode=1 --innodb-buffer-pool-size=128M --innodb-log-file-size=96M "
    "--performance-schema=OFF";

/// The JSON Schema `type` of a property ("number" when it lists several).
std::string json_type(const nlohmann::json& property) {
  const auto& t = property.value("type", nlohmann::json("string"));
  return t.is_string() ? t.get<std::string>() : "number";
}

/// Kafka Connect's JsonConverter schema of an event object (nested objects as structs, which
/// the Flatten transform turns into `event_<path>` columns, as Sluice names them).
nlohmann::ordered_json connect_schema_of(const nlohmann::json& object_schema) {
  nlohmann::ordered_json fields = nlohmann::ordered_json::array();
  const auto properties = object_schema.value("properties", nlohmann::json::object());
  for (const auto& [name, property] : properties.items()) {
    const std::string type = json_type(property);
    nlohmann::ordered_json field;
    if (type == "object") {
      field = connect_schema_of(property);
    } else {
      field["type"] = type == "boolean"   ? "boolean"
                      : type == "integer" ? "int64"
                      : type == "number"  ? "double"
                                          : "string";  // strings, and arrays as JSON text
    }
    field["optional"] = true;
    field["field"] = name;
    fields.push_back(field);
  }
  return {{"type", "struct"}, {"fields", fields}, {"optional", true}};
}

/// An event's values for its Connect schema: numbers of a `number` property as doubles, arrays
/// as their JSON text, nested objects as nested structs.
nlohmann::ordered_json connect_payload_of(const nlohmann::ordered_json& event,
                                          const nlohmann::json& object_schema) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  const auto& properties = object_schema.value("properties", nlohmann::json::object());
  for (const auto& [name, value] : event.items()) {
    const auto p = properties.find(name);
    if (p == properties.end() || value.is_null()) continue;
    const std::string type = json_type(*p);
    if (type == "object") {
      out[name] = connect_payload_of(value, *p);
    } else if (type == "number") {
      out[name] = value.get<double>();
    } else if (value.is_array() || value.is_object()) {
      out[name] = value.dump();
    } else {
      out[name] = value;
    }
  }
  return out;
}

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int run() {
    const bool connect = std::ranges::find(o_.peers, "connect") != o_.peers.end();
    if (connect && o_.broker == "mock") {
      throw std::runtime_error("--peers connect needs Apache Kafka: --broker kafka (or both)");
    }
    if (o_.connect_tasks == 0) o_.connect_tasks = o_.writers;
    if (connect) {
      // Before any clock starts: a download must never be timed as Connect's start-up.
      step("fetching Kafka Connect and the Debezium JDBC sink (scripts/kafka-connect fetch)");
      std::string out;
      if (sluice::testing::run_command(
              {sluice::testing::source_dir() + "/scripts/kafka-connect", "fetch"}, out) != 0) {
        throw std::runtime_error("scripts/kafka-connect fetch failed: " + out);
      }
    }
    step(o_.server_defaults
             ? "starting a private MariaDB with the server's default settings (durable)"
             : "starting a private MariaDB (durable: innodb_flush_log_at_trx_commit=1; "
               "innodb_autoinc_lock_mode=2)");
    db_ =
        std::make_unique<MariaDb>(dir_.file("mariadb"), o_.server_defaults ? kServerDefaults : "");
    std::vector<std::string> brokers;
    if (o_.broker == "mock" || o_.broker == "both") brokers.emplace_back("mock");
    if (o_.broker == "kafka" || o_.broker == "both") brokers.emplace_back("kafka");
    nlohmann::json runs = nlohmann::json::object();
    for (const auto& name : brokers) {
      if (name == "mock") {
        step("starting the test broker (librdkafka's mock cluster)");
        broker_ = std::make_unique<Broker>(
            std::vector<std::string>{std::string(kTopic) + ":" + std::to_string(o_.partitions)},
            dir_.path());
        bootstrap_ = broker_->bootstrap();
      } else {
        step("starting Apache Kafka (one KRaft node on loopback)");
        kafka_ = std::make_unique<KafkaCluster>(1);
        kafka_->create_topic(kTopic, o_.partitions);
        bootstrap_ = kafka_->bootstrap();
      }
      produce();
      const bool peers = connect && name == "kafka";
      if (peers) produce_connect();
      nlohmann::json direct = run_direct(name, 1);
      nlohmann::json fleet = nlohmann::json::object();
      for (const int n : o_.instances) {
        if (n > 1) fleet[std::to_string(n)] = run_direct(name, n);
      }
      runs[name] = {{"produce_seconds", produce_s_}, {"direct", direct}};
      if (!skipped("drain")) runs[name]["drain"] = run_drain(name);
      if (!skipped("replay")) runs[name]["replay"] = run_replay(name);
      if (!fleet.empty()) runs[name]["direct_instances"] = fleet;
      if (peers) {
        runs[name]["connect"] = run_connect(name);
        runs[name]["direct_after_peers"] = run_direct(name, 1, "_after");
      }
      broker_.reset();
      kafka_.reset();
    }
    nlohmann::json ceiling = run_load_data(brokers.front());
    report(runs, ceiling);
    return 0;
  }

 private:
  void step(const std::string& what) { std::cerr << "e2e: " << what << "\n"; }
  bool skipped(const std::string& stage) const {
    return std::ranges::find(o_.skip, stage) != o_.skip.end();
  }

  void produce() {
    step("loading " + std::to_string(o_.events) + " events into " + std::to_string(o_.partitions) +
         " partitions (zstd)");
    const auto started = Clock::now();
    sluice::testing::Producer producer(bootstrap_, "zstd");
    for (uint64_t i = 0; i < o_.events; ++i) {
      const auto p = static_cast<int32_t>(i % static_cast<uint64_t>(o_.partitions));
      producer.produce(kTopic, p,
                       EventFactory::navigation_timing(1, static_cast<uint32_t>(p),
                                                       i / static_cast<uint64_t>(o_.partitions)));
    }
    producer.flush();
    for (const auto& [key, offsets] : producer.offsets()) {
      if (offsets.front() != 0) throw std::runtime_error("the broker dropped the first events");
    }
    produce_s_ = seconds_since(started);
  }

  std::map<std::string, std::string> kafka_properties() const {
    std::map<std::string, std::string> out;
    for (const auto& kv : o_.kafka_properties) {
      const auto eq = kv.find('=');
      out[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    return out;
  }

  /// A config for one Sluice run into `database`, with its own folder (spool, log).
  std::string config(const TempDir& run_dir, const std::string& database, const std::string& group,
                     const std::string& instance_id = "") {
    db_->exec("CREATE DATABASE IF NOT EXISTS `" + database + "`");
    db_->exec("GRANT ALL ON `" + database + "`.* TO 'sluice'@'localhost'");
    db_->exec("GRANT ALL ON `" + database + "`.* TO 'sluice'@'127.0.0.1'");
    // Beside a peer, Sluice connects as the peer does: over TCP on loopback (the JDBC driver
    // gets no Unix socket), so that neither has a cheaper way into the server.
    return sluice::testing::write_config(
        run_dir, bootstrap_, *db_, {kTopic}, group,
        {.extra_yaml = "batch:\n  max_rows: " + std::to_string(o_.batch_rows) + "\n",
         .kafka_properties = kafka_properties(),
         .mariadb_lines = "  writers: " + std::to_string(o_.writers) +
                          "\n  insert_method: " + o_.insert_method + "\n",
         .database = database,
         .instance_id = instance_id,
         .tcp = !o_.peers.empty()});
  }

  int64_t committed(const std::string& database) {
    try {
      return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM `" + database +
                         "`.sluice_offsets");
    } catch (const std::exception&) {
      return 0;  // not created yet
    }
  }

  /// When the first rows, 10% and 100% of the events were in, and the CPU the processes had
  /// used when the first rows were in and at the end.
  struct Progress {
    Clock::time_point first{}, tenth{}, done{};
    int64_t first_rows = 0;
    double cpu_first = 0, cpu_done = 0;
    /// CPU seconds per million events written after the first rows: start-up (a JVM's, a
    /// consumer group's join) left out, and all the work of reading, converting and writing in,
    /// whichever stage of the process does it when.
    double cpu_after_startup_per_million(uint64_t events) const {
      return (cpu_done - cpu_first) * 1e6 /
             static_cast<double>(static_cast<int64_t>(events) - first_rows);
    }
  };

  static double fleet_cpu(const std::vector<Process*>& fleet) {
    double cpu = 0;
    for (Process* p : fleet) cpu += proc_cpu_seconds(p->pid());
    return cpu;
  }

  /// Polls `count` (rows in so far) every 20 ms until all events are in.
  Progress wait_for(const std::function<int64_t()>& count, const std::vector<Process*>& fleet,
                    const std::string& what) {
    Progress p;
    const auto n = static_cast<int64_t>(o_.events);
    for (;;) {
      const int64_t done = count();
      if (p.first_rows == 0 && done > 0) {
        p.first = Clock::now();
        p.first_rows = done;
        p.cpu_first = fleet_cpu(fleet);
      }
      if (p.tenth == Clock::time_point{} && done >= n / 10) p.tenth = Clock::now();
      if (done >= n) {
        if (p.first_rows >= n) {
          throw std::runtime_error(what + " wrote all " + std::to_string(n) +
                                   " events between two looks: too few to time; more --events");
        }
        p.done = Clock::now();
        p.cpu_done = fleet_cpu(fleet);
        return p;
      }
      for (Process* process : fleet) {
        if (!process->running()) throw std::runtime_error(what + " exited: " + process->log());
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  /// What `database` dead-lettered, by reason (its first 60 characters), for an error message.
  std::string dead_letters(const std::string& database) {
    std::string out;
    for (const auto& row : db_->query("SELECT LEFT(reason, 60) AS r, COUNT(*) FROM `" + database +
                                      "`.sluice_dead_letter GROUP BY r ORDER BY 2 DESC LIMIT 5")) {
      out += "\n  dead letters: " + row[1].value_or("?") + " x " + row[0].value_or("?");
    }
    return out;
  }

  /// Polls until `database` has all events (sluice_offsets, written with the rows).
  Progress wait_for_all(const std::string& database, const std::vector<Process*>& fleet) {
    return wait_for([&] { return committed(database); }, fleet, "sluice");
  }

  /// Stops every process; checks the rows; peak RSS of the largest, CPU of all together.
  nlohmann::json stop(const std::vector<Process*>& fleet, const std::string& database) {
    for (Process* sluice : fleet) sluice->signal(SIGTERM);
    double rss = 0, cpu = 0;
    for (Process* sluice : fleet) {
      if (sluice->wait(120s) != 0) throw std::runtime_error("sluice did not stop cleanly");
      const auto& u = *sluice->usage();
      rss = std::max(rss, static_cast<double>(u.ru_maxrss) / 1024.0);
      cpu += cpu_seconds(u);
    }
    const auto rows = db_->scalar("SELECT COUNT(*) FROM `" + database + "`.`" + kTable + "`");
    if (rows != static_cast<int64_t>(o_.events)) {
      throw std::runtime_error(database + " holds " + std::to_string(rows) + " rows, expected " +
                               std::to_string(o_.events) + dead_letters(database));
    }
    return {{"peak_rss_mib", rss},
            {"cpu_s", cpu},
            {"cpu_s_per_million_events", cpu * 1e6 / static_cast<double>(o_.events)}};
  }

  /// The same instance started again — a known group, its static membership and fleet topic
  /// there, as after an upgrade or a crash: seconds from the process's start until it may
  /// write (partitions assigned, the write lease held, MariaDB reached: state `running`).
  double restart(const TempDir& run_dir, const std::string& cfg) {
    const auto started = Clock::now();
    auto process = sluice::testing::start_sluice(run_dir, cfg, "sluice-restart.log");
    double seconds = -1;
    while (seconds < 0 && Clock::now() - started < 60s && process->running()) {
      const std::string url = sluice::testing::admin_url(*process);
      if (url.empty()) {  // not listening yet
        std::this_thread::sleep_for(5ms);
        continue;
      }
      const auto reply = sluice::admin::http_request(url, "GET", "/v1/status", "", "", 2000);
      if (reply && reply->status == 200) {
        const auto st = nlohmann::json::parse(reply->body, nullptr, false);
        if (st.is_object() && st.value("state", "") == "running" && st.contains("partitions") &&
            !st["partitions"].empty()) {
          seconds = std::chrono::duration<double>(Clock::now() - started).count();
        }
      }
      if (seconds < 0) std::this_thread::sleep_for(5ms);
    }
    process->signal(SIGTERM);
    if (process->wait(60s) != 0) throw std::runtime_error("sluice did not stop cleanly");
    if (seconds < 0) throw std::runtime_error("sluice did not write again after a restart");
    return seconds;
  }

  /// `instances` processes of one group (each its own spool and instance id) into one empty
  /// database; on this 2-core machine they share the CPU with MariaDB.
  nlohmann::json run_direct(const std::string& broker, int instances,
                            const std::string& label = "") {
    step("direct: " + std::to_string(instances) + " instance(s) of sluice run into an empty " +
         "database");
    std::vector<std::unique_ptr<TempDir>> run_dirs;
    std::vector<std::string> configs;
    const std::string suffix = (instances == 1 ? "" : "_" + std::to_string(instances)) + label;
    const std::string database = "log_direct_" + broker + suffix;
    for (int i = 0; i < instances; ++i) {
      run_dirs.push_back(std::make_unique<TempDir>());
      configs.push_back(config(*run_dirs.back(), database, "bench-direct" + suffix,
                               "bench-" + std::to_string(i)));
    }
    const auto started = Clock::now();
    std::vector<std::unique_ptr<Process>> processes;
    std::vector<Process*> fleet;
    for (int i = 0; i < instances; ++i) {
      processes.push_back(sluice::testing::start_sluice(*run_dirs[static_cast<size_t>(i)],
                                                        configs[static_cast<size_t>(i)]));
      fleet.push_back(processes.back().get());
    }
    const Progress p = wait_for_all(database, fleet);
    const double total = std::chrono::duration<double>(p.done - started).count();
    const double steady = std::chrono::duration<double>(p.done - p.tenth).count();
    auto out = stop(fleet, database);
    // Not on the test broker: librdkafka's mock cluster does not replace a returning static
    // member, so a restart there waits out the old session (bench/README.md, Start-up).
    if (instances == 1 && broker != "mock") {
      out["restart_seconds_until_writing"] = restart(*run_dirs[0], configs[0]);
    }
    out["cpu_s_per_million_events_after_startup"] = p.cpu_after_startup_per_million(o_.events);
    out["cpu_s_until_first_rows"] = p.cpu_first;
    // From the processes' start (consumer group join included) until the first batch is in.
    out["seconds_until_first_rows"] = std::chrono::duration<double>(p.first - started).count();
    out["seconds"] = total;
    out["events_per_s"] = static_cast<double>(o_.events) / total;
    out["steady_events_per_s"] = 0.9 * static_cast<double>(o_.events) / steady;
    return out;
  }

  nlohmann::json run_drain(const std::string& broker) {
    step("drain: sluice starts paused, spools the events, then resumes");
    TempDir run_dir;
    const std::string database = "log_drain_" + broker;
    const auto cfg = config(run_dir, database, "bench-drain");
    {
      // Paused before it starts (as a service paused for maintenance and restarted): the whole
      // backlog goes to the spool first, whatever the broker's start-up speed.
      auto spool = sluice::storage::RocksDbSpool::open(run_dir.file("spool"));
      if (!spool || !(*spool)->set_pause(sluice::storage::PauseRecord{"bench", 0})) {
        throw std::runtime_error("cannot prepare the spool");
      }
    }
    auto sluice = sluice::testing::start_sluice(run_dir, cfg);
    std::string url, out;
    if (!sluice::testing::wait_until([&] { return !(url = admin_url(*sluice)).empty(); }, 30s)) {
      throw std::runtime_error("no admin endpoint: " + sluice->log());
    }
    const std::string bin = sluice::testing::binary_dir() + "/main/sluice";
    const auto paused = Clock::now();
    // Spooling: the whole backlog, durably.
    uint64_t spooled = 0;
    while (spooled < o_.events) {
      if (sluice::testing::run_command({bin, "status", "--admin", url, "--json"}, out) != 0) {
        throw std::runtime_error("status failed: " + out);
      }
      spooled = nlohmann::json::parse(out)["spool"]["events"].get<uint64_t>();
      std::this_thread::sleep_for(100ms);
    }
    const double spool_s = seconds_since(paused);
    const auto status = nlohmann::json::parse(out);
    const auto resumed = Clock::now();
    if (sluice::testing::run_command({bin, "resume", "--admin", url}, out) != 0) {
      throw std::runtime_error("resume failed: " + out);
    }
    const Progress p = wait_for_all(database, {sluice.get()});
    const auto tenth = p.tenth;
    const auto done = p.done;
    const double drain_s = std::chrono::duration<double>(done - resumed).count();
    auto result = stop({sluice.get()}, database);
    result["spool_fill_seconds"] = spool_s;
    result["spool_fill_events_per_s"] = static_cast<double>(o_.events) / spool_s;
    result["spool_bytes"] = status["spool"]["bytes"];
    result["seconds"] = drain_s;
    result["events_per_s"] = static_cast<double>(o_.events) / drain_s;
    result["steady_events_per_s"] =
        0.9 * static_cast<double>(o_.events) / std::chrono::duration<double>(done - tenth).count();
    return result;
  }

  nlohmann::json run_replay(const std::string& broker) {
    step("replay: sluice replay of the whole topic into an empty database");
    TempDir run_dir;
    const std::string database = "log_replay_" + broker;
    const auto cfg = config(run_dir, database, "bench-replay");
    const std::string bin = sluice::testing::binary_dir() + "/main/sluice";
    std::string out;
    const auto started = Clock::now();
    const int code =
        sluice::testing::run_command({bin, "replay", "--config", cfg, "--topic", kTopic,
                                      "--from-offset", "0", "--confirm", "--json"},
                                     out);
    const double total = seconds_since(started);
    if (code != 0) throw std::runtime_error("replay failed: " + out);
    // The summary is the output's last line that is a JSON object (progress lines precede it).
    nlohmann::json summary;
    for (size_t end = out.size(); end > 0 && !summary.is_object();) {
      const size_t nl = out.rfind('\n', end - 1);
      const size_t from = nl == std::string::npos ? 0 : nl + 1;
      if (from < end && out[from] == '{') {
        summary = nlohmann::json::parse(out.substr(from, end - from), nullptr, false);
      }
      if (nl == std::string::npos) break;
      end = nl;
    }
    if (!summary.is_object() || summary["written"] != o_.events) {
      throw std::runtime_error("replay did not write every event: " + out);
    }
    const auto rows = db_->scalar("SELECT COUNT(*) FROM `" + database + "`.`" + kTable + "`");
    if (rows != static_cast<int64_t>(o_.events)) {
      throw std::runtime_error(database + " holds " + std::to_string(rows) + " rows after replay");
    }
    nlohmann::json result = {{"seconds", total},
                             {"events_per_s", static_cast<double>(o_.events) / total},
                             {"replay_seconds", summary["seconds"]},
                             {"replay_events_per_s", summary["events_per_s"]},
                             {"held_back_s",
                              summary.value("held_back_s", nlohmann::json::object())}};
    // Where the time goes: the same again (every uuid present: reading, decoding and the
    // lookups, no load), and a dry run into a database without the table (reading and decoding).
    {
      const auto t = Clock::now();
      if (sluice::testing::run_command({bin, "replay", "--config", cfg, "--topic", kTopic,
                                        "--from-offset", "0", "--confirm", "--json"},
                                       out) != 0) {
        throw std::runtime_error("second replay failed: " + out);
      }
      result["second_run_events_per_s"] = static_cast<double>(o_.events) / seconds_since(t);
    }
    TempDir dry_dir;
    const auto dry_cfg = config(dry_dir, "log_replay_dry_" + broker, "bench-replay-dry");
    {
      const auto t = Clock::now();
      if (sluice::testing::run_command({bin, "replay", "--config", dry_cfg, "--topic", kTopic,
                                        "--from-offset", "0", "--dry-run", "--json"},
                                       out) != 0) {
        throw std::runtime_error("dry run failed: " + out);
      }
      result["dry_run_empty_events_per_s"] = static_cast<double>(o_.events) / seconds_since(t);
    }
    return result;
  }

  /// The same N events again, into kConnectTopic (same partitions, zstd), each in Kafka Connect's
  /// JSON envelope: the record's schema (from the event's JSON Schema) and its payload. The
  /// Debezium sink does no conversion of its own, so the payload carries the values Sluice's
  /// decoder writes, converted here by Sluice's own functions before anything is timed: the
  /// timestamp as MediaWiki's YYYYMMDDHHMMSS, `dt` as DATETIME text, an object userAgent as
  /// its JSON text. That work (and validation) is Sluice's alone in the timed runs.
  void produce_connect() {
    step("loading the same events into " + std::string(kConnectTopic) +
         " in Kafka Connect's JSON envelope (zstd)");
    kafka_->create_topic(kConnectTopic, o_.partitions);
    std::ifstream in(sluice::testing::source_dir() + "/schemas/NavigationTiming/15485142.json");
    const auto event_schema = nlohmann::json::parse(in);
    nlohmann::ordered_json fields = nlohmann::ordered_json::array();
    for (const char* name : {"uuid", "timestamp", "dt", "wiki", "webHost", "userAgent"}) {
      fields.push_back(
          {{"type", "string"}, {"optional", name != std::string("uuid")}, {"field", name}});
    }
    nlohmann::ordered_json event = connect_schema_of(event_schema);
    event["field"] = "event";
    fields.push_back(event);
    const std::string head =
        "{\"schema\":" +
        nlohmann::ordered_json{{"type", "struct"}, {"fields", fields}, {"optional", false}}.dump() +
        ",\"payload\":";
    const auto started = Clock::now();
    sluice::testing::Producer producer(bootstrap_, "zstd");
    for (uint64_t i = 0; i < o_.events; ++i) {
      const auto p = static_cast<int32_t>(i % static_cast<uint64_t>(o_.partitions));
      const auto capsule = nlohmann::ordered_json::parse(EventFactory::navigation_timing(
          1, static_cast<uint32_t>(p), i / static_cast<uint64_t>(o_.partitions)));
      nlohmann::ordered_json row = {{"uuid", capsule["uuid"]}};
      if (capsule.contains("timestamp")) {
        if (const auto t = sluice::ingest::epoch_seconds_from_timestamp(capsule["timestamp"])) {
          char text[14];
          sluice::ingest::format_mediawiki(*t, text);
          row["timestamp"] = std::string(text, sizeof text);
        }
      }
      if (capsule.contains("dt")) {
        if (const auto t = sluice::ingest::epoch_seconds_from_iso8601(
                capsule["dt"].get_ref<const std::string&>())) {
          char text[19];
          sluice::ingest::format_datetime(*t, text);
          row["dt"] = std::string(text, sizeof text);
        }
      }
      for (const char* name : {"wiki", "webHost"}) {
        if (capsule.contains(name)) row[name] = capsule[name];
      }
      if (capsule.contains("userAgent")) {
        const auto& ua = capsule["userAgent"];
        row["userAgent"] = ua.is_string() ? ua.get<std::string>() : ua.dump();
      }
      row["event"] = connect_payload_of(capsule["event"], event_schema);
      producer.produce(kConnectTopic, p, head + row.dump() + "}");
    }
    producer.flush();
    for (const auto& [key, offsets] : producer.offsets()) {
      if (offsets.front() != 0) throw std::runtime_error("the broker dropped the first events");
    }
    connect_produce_s_ = seconds_since(started);
  }

  /// The last lines of a log file (the file goes with its temporary folder).
  static std::string log_tail(const std::string& path, size_t lines = 40) {
    std::ifstream in(path);
    std::vector<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      tail.push_back(std::move(line));
      if (tail.size() > lines) tail.erase(tail.begin());
    }
    std::string out;
    for (const auto& line : tail) out += line + "\n";
    return out;
  }

  /// Kafka Connect's standalone worker with the Debezium JDBC sink, from start until the table
  /// holds every event; then the same checks as Sluice's runs, and a comparison of every row
  /// with the direct run's (by uuid, every column but id).
  nlohmann::json run_connect(const std::string& broker) {
    step(
        "peer: Kafka Connect (standalone) + Debezium JDBC sink into an empty table of the same "
        "shape");
    const std::string source = "`log_direct_" + broker + "`.`" + kTable + "`";
    const std::string database = "log_connect";
    const std::string table = "`" + database + "`.`" + kTable + "`";
    db_->exec("CREATE DATABASE `" + database + "`");
    db_->exec("GRANT ALL ON `" + database + "`.* TO 'sluice'@'127.0.0.1'");
    db_->exec("CREATE TABLE " + table + " LIKE " + source);
    // primary.key.mode=kafka upserts on the record's Kafka coordinates: three more columns and
    // a unique key over them (the table keeps its id, uuid and timestamp keys).
    db_->exec("ALTER TABLE " + table +
              " ADD COLUMN `__connect_topic` VARCHAR(255) CHARACTER SET ascii NOT NULL,"
              " ADD COLUMN `__connect_partition` INT NOT NULL,"
              " ADD COLUMN `__connect_offset` BIGINT NOT NULL,"
              " ADD UNIQUE KEY `ix_kafka` (`__connect_topic`, `__connect_partition`, "
              "`__connect_offset`)");
    TempDir run_dir;
    const std::string password = db_->password();
    const auto [worker, connector] = connect_properties(run_dir, database);
    std::ofstream(run_dir.file("worker.properties")) << worker;
    std::ofstream(run_dir.file("connector.properties"))
        << connector << "connection.password=" << password << "\n";

    const auto n = static_cast<int64_t>(o_.events);
    int64_t known = 0;  // rows known to be in (a lower bound)
    int64_t last_max = -1;
    Clock::time_point counted{}, moved = Clock::now();
    // ids are unique, so MAX(id) (one index dive) bounds COUNT(*) (a scan) from above: count
    // only once MAX(id) has reached the next mark, and at most every 250 ms.
    auto rows_in = [&]() -> int64_t {
      const int64_t max_id = db_->scalar("SELECT COALESCE(MAX(id), 0) FROM " + table);
      if (max_id != last_max) {
        last_max = max_id;
        moved = Clock::now();
      } else if (Clock::now() - moved > 180s) {
        throw std::runtime_error("Kafka Connect wrote nothing for 3 minutes; its log ends:\n" +
                                 log_tail(run_dir.file("connect.log")));
      }
      const int64_t mark = known >= n / 10 ? n : n / 10;
      if (max_id < mark || Clock::now() - counted < 250ms) {
        return known == 0 && max_id > 0 ? 1 : known;  // the first rows are in
      }
      counted = Clock::now();
      return known = db_->scalar("SELECT COUNT(*) FROM " + table);
    };
    const auto started = Clock::now();
    Process connect(
        {sluice::testing::source_dir() + "/scripts/kafka-connect", "run", run_dir.path()},
        run_dir.file("connect.log"));
    const Progress p = wait_for(rows_in, {&connect}, "Kafka Connect");
    connect.signal(SIGTERM);
    const auto code = connect.wait(120s);
    if (!code || (*code != 0 && *code != 128 + SIGTERM)) {
      throw std::runtime_error("Kafka Connect did not stop cleanly; its log ends:\n" +
                               log_tail(run_dir.file("connect.log")));
    }
    const auto rows = db_->scalar("SELECT COUNT(*) FROM " + table);
    if (rows != n) {
      throw std::runtime_error(database + " holds " + std::to_string(rows) + " rows, expected " +
                               std::to_string(n));
    }
    std::string differ;
    for (const auto& r :
         db_->query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                    "'log_direct_" +
                    broker + "' AND TABLE_NAME = '" + kTable +
                    "' AND COLUMN_NAME NOT IN ('id', 'uuid')")) {
      differ += (differ.empty() ? "NOT (a.`" : " AND a.`") + *r[0] + "` <=> b.`" + *r[0] + "`";
    }
    const auto matched =
        db_->scalar("SELECT COUNT(*) FROM " + source + " a JOIN " + table + " b USING (uuid)");
    const auto differing = db_->scalar("SELECT COUNT(*) FROM " + source + " a JOIN " + table +
                                       " b USING (uuid) WHERE " + differ + ")");
    if (matched != n || differing != 0) {
      std::cerr << "e2e: WARNING: Kafka Connect's rows are not Sluice's: " << matched
                << " uuids in both, " << differing << " of them differing\n";
    }
    const auto& u = *connect.usage();
    const double cpu = cpu_seconds(u);
    const double total = std::chrono::duration<double>(p.done - started).count();
    const double steady = std::chrono::duration<double>(p.done - p.tenth).count();
    return {{"seconds", total},
            {"events_per_s", static_cast<double>(n) / total},
            {"steady_events_per_s", 0.9 * static_cast<double>(n) / steady},
            {"peak_rss_mib", static_cast<double>(u.ru_maxrss) / 1024.0},
            {"cpu_s", cpu},
            {"cpu_s_per_million_events", cpu * 1e6 / static_cast<double>(n)},
            {"cpu_s_per_million_events_after_startup", p.cpu_after_startup_per_million(o_.events)},
            {"cpu_s_until_first_rows", p.cpu_first},
            {"seconds_until_first_rows", std::chrono::duration<double>(p.first - started).count()},
            {"rows_matching_sluice", matched - differing},
            {"produce_seconds", connect_produce_s_},
            {"worker_properties", worker},
            {"connector_properties", connector}};
  }

  /// The Connect worker's and the Debezium sink's properties (but the password, kept out of the
  /// report).
  std::pair<std::string, std::string> connect_properties(const TempDir& run_dir,
                                                         const std::string& database) {
    const std::string batch = std::to_string(o_.connect_batch);
    const std::string worker =
        "bootstrap.servers=" + bootstrap_ +
        "\n"
        // Records with their schema: the JSON envelope produced by produce_connect().
        "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
        "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
        "value.converter.schemas.enable=true\n"
        "offset.storage.file.filename=" +
        run_dir.file("connect.offsets") +
        "\n"
        "listeners=http://127.0.0.1:0\n"
        // Plugins from the classpath only (no plugin.path): no isolation to scan for.
        "plugin.discovery=only_scan\n"
        // As many records per poll as the sink writes per batch (default 500).
        "consumer.max.poll.records=" +
        batch + "\n";
    const std::string connector =
        "name=sluice-peer-jdbc-sink\n"
        "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector\n"
        "tasks.max=" +
        std::to_string(o_.connect_tasks) + "\ntopics=" + kConnectTopic +
        "\n"
        "connection.url=jdbc:mariadb://127.0.0.1:" +
        std::to_string(db_->port()) + "/" + database +
        (o_.connect_jdbc_options.empty() ? "" : "?" + o_.connect_jdbc_options) +
        "\n"
        "connection.username=sluice\n"
        "insert.mode=upsert\n"
        "primary.key.mode=kafka\n"
        "schema.evolution=none\n"
        "quote.identifiers=true\n"
        "collection.name.format=" +
        kTable +
        "\n"
        "batch.size=" +
        batch +
        "\n"
        "transforms=flatten\n"
        "transforms.flatten.type=org.apache.kafka.connect.transforms.Flatten$Value\n"
        "transforms.flatten.delimiter=_\n";
    return {worker, connector};
  }

  nlohmann::json run_load_data(const std::string& broker) {
    step("ceiling: the server's LOAD DATA INFILE of the same rows into an identical table");
    const std::string source = "log_direct_" + broker;
    std::string columns;
    for (const auto& r :
         db_->query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '" +
                    source + "' AND TABLE_NAME = '" + std::string(kTable) +
                    "' AND COLUMN_NAME <> 'id' ORDER BY ORDINAL_POSITION")) {
      columns += (columns.empty() ? "`" : ",`") + *r[0] + "`";
    }
    const std::string file = dir_.file("rows.tsv");
    db_->exec("SELECT " + columns + " FROM `" + source + "`.`" + kTable +
              "` ORDER BY id INTO OUTFILE '" + file + "'");
    db_->exec("CREATE DATABASE log_load");
    db_->exec("CREATE TABLE log_load.`" + std::string(kTable) + "` LIKE `" + source + "`.`" +
              kTable + "`");
    const auto started = Clock::now();
    db_->exec("LOAD DATA INFILE '" + file + "' INTO TABLE log_load.`" + kTable + "` (" + columns +
              ")");
    const double s = seconds_since(started);
    const auto rows = db_->scalar("SELECT COUNT(*) FROM log_load.`" + std::string(kTable) + "`");
    if (rows != static_cast<int64_t>(o_.events)) throw std::runtime_error("LOAD DATA lost rows");
    return {{"seconds", s},
            {"rows_per_s", static_cast<double>(o_.events) / s},
            {"file_bytes", std::filesystem::file_size(file)}};
  }

  void report(const nlohmann::json& runs, const nlohmann::json& ceiling) {
    const double load = ceiling["rows_per_s"];
    utsname u{};
    uname(&u);
    std::string cpu = "?";
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);) {
      if (line.starts_with("model name")) {
        cpu = line.substr(line.find(':') + 2);
        break;
      }
    }
    std::string commit;
    (void)sluice::testing::run_command(
        {"git", "-C", sluice::testing::source_dir(), "rev-parse", "--short", "HEAD"}, commit);
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) {
      commit.pop_back();
    }
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    nlohmann::json j = {
        {"date", date},
        {"commit", commit},
        {"machine", {{"cpus", sysconf(_SC_NPROCESSORS_ONLN)}, {"cpu", cpu}, {"kernel", u.release}}},
        {"events", o_.events},
        {"partitions", o_.partitions},
        {"writers", o_.writers},
        {"insert_method", o_.insert_method},
        {"batch_rows", o_.batch_rows},
        {"kafka_properties", o_.kafka_properties},
        {"server_settings", o_.server_defaults ? "MariaDB defaults" : "innodb_autoinc_lock_mode=2"},
        {"brokers", runs},
        {"load_data_infile", ceiling},
    };
    std::printf("\nSluice end-to-end benchmark, %s, commit %s, %ld CPUs (%s)\n", date,
                commit.c_str(), sysconf(_SC_NPROCESSORS_ONLN), cpu.c_str());
    std::printf("%lu NavigationTiming events, %d partitions, %d writers, batches of %d rows\n",
                static_cast<unsigned long>(o_.events), o_.partitions, o_.writers, o_.batch_rows);
    std::printf("MariaDB: %s\n\n",
                o_.server_defaults ? "the server's default settings (innodb_autoinc_lock_mode=1)"
                                   : "innodb_autoinc_lock_mode=2");
    std::printf("%-52s %12s %10s %12s %14s\n", "", "events/s", "vs LOAD", "peak RSS", "CPU s/M ev");
    auto row = [&](const std::string& name, double rate, const nlohmann::json* run) {
      std::printf("%-52s %12.0f %9.2fx", name.c_str(), rate, rate / load);
      if (run != nullptr) {
        std::printf(" %8.0f MiB %14.2f", (*run)["peak_rss_mib"].get<double>(),
                    (*run)["cpu_s_per_million_events"].get<double>());
      }
      std::printf("\n");
    };
    for (const auto& [name, run] : runs.items()) {
      const std::string b = name == "mock" ? " [test broker]" : " [Apache Kafka]";
      const auto& direct = run["direct"];
      row("direct, steady (10% to 100%)" + b, direct["steady_events_per_s"], &direct);
      row("direct, including start-up" + b, direct["events_per_s"], nullptr);
      std::printf("%-52s %11.1f s\n", ("direct, first rows in after" + b).c_str(),
                  direct["seconds_until_first_rows"].get<double>());
      if (direct.contains("restart_seconds_until_writing")) {
        std::printf("%-52s %11.2f s\n", ("restarted, writing after" + b).c_str(),
                    direct["restart_seconds_until_writing"].get<double>());
      }
      if (run.contains("direct_instances")) {
        for (const auto& [n, d] : run["direct_instances"].items()) {
          row("direct, " + n + " instances, steady" + b, d["steady_events_per_s"], &d);
          row("direct, " + n + " instances, incl. start-up" + b, d["events_per_s"], nullptr);
          j["ratios"][name]["direct_" + n + "_instances_steady"] =
              d["steady_events_per_s"].get<double>() / load;
        }
      }
      j["ratios"][name]["direct_steady"] = direct["steady_events_per_s"].get<double>() / load;
      if (run.contains("direct_after_peers")) {
        j["ratios"][name]["direct_after_peers_steady"] =
            run["direct_after_peers"]["steady_events_per_s"].get<double>() / load;
      }
      j["ratios"][name]["direct_total"] = direct["events_per_s"].get<double>() / load;
      if (run.contains("drain")) {
        const auto& drain = run["drain"];
        row("drain of the spooled backlog" + b, drain["events_per_s"], &drain);
        row("spooling (Kafka -> spool, paused)" + b, drain["spool_fill_events_per_s"], nullptr);
        j["ratios"][name]["drain"] = drain["events_per_s"].get<double>() / load;
      }
      if (run.contains("replay")) {
        const auto& replay = run["replay"];
        row("replay of the topic, start to exit" + b, replay["events_per_s"], nullptr);
        for (const auto& [cause, held] : replay["held_back_s"].items()) {
          std::printf("%-52s %11.1f s\n", ("  held back by " + cause).c_str(), held.get<double>());
        }
        row("  the same again (all present: no load)" + b, replay["second_run_events_per_s"],
            nullptr);
        row("  dry run, no table (read and decode only)" + b, replay["dry_run_empty_events_per_s"],
            nullptr);
        j["ratios"][name]["replay"] = replay["events_per_s"].get<double>() / load;
      }
    }
    row("server LOAD DATA INFILE (ceiling)", load, nullptr);
    if (runs.contains("kafka") && runs["kafka"].contains("connect")) {
      j["ratios"]["peers"] = report_peers(runs["kafka"], load);
    }
    std::printf("\nLOAD DATA file %.1f MiB\n", ceiling["file_bytes"].get<double>() / 1048576.0);
    std::string path = o_.json_path;
    if (path.empty()) {
      std::filesystem::create_directories(sluice::testing::source_dir() + "/.local/bench");
      path = sluice::testing::source_dir() + "/.local/bench/e2e-" + date + ".json";
    }
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    std::ofstream out(path);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error("cannot write " + path);
    std::printf("JSON: %s\n", path.c_str());
  }

  /// Sluice beside Kafka Connect + Debezium and LOAD DATA: rates, CPU, memory and the ratios.
  nlohmann::json report_peers(const nlohmann::json& run, double load) {
    const auto& before = run["direct"];
    const auto& after = run["direct_after_peers"];
    const auto& connect = run["connect"];
    auto get = [](const nlohmann::json& r, const char* key) { return r[key].get<double>(); };
    std::printf(
        "\nPeers on Apache Kafka (one run: Sluice, then Kafka Connect, then Sluice again)\n");
    std::printf("%-40s %10s %10s %8s %10s %12s %11s %9s\n", "", "steady/s", "total/s", "vs LOAD",
                "CPU s/M ev", "start-up CPU", "first rows", "peak RSS");
    auto line = [&](const std::string& name, const nlohmann::json& r) {
      std::printf("%-40s %10.0f %10.0f %7.2fx %10.2f %10.1f s %9.1f s %5.0f MiB\n", name.c_str(),
                  get(r, "steady_events_per_s"), get(r, "events_per_s"),
                  get(r, "steady_events_per_s") / load, get(r, "cpu_s_per_million_events"),
                  get(r, "cpu_s_until_first_rows"), get(r, "seconds_until_first_rows"),
                  get(r, "peak_rss_mib"));
    };
    line("Sluice direct (before the peer)", before);
    line("Kafka Connect + Debezium JDBC sink", connect);
    line("Sluice direct (after the peer)", after);
    std::printf("%-40s %10.0f %10s %7.2fx\n", "server LOAD DATA INFILE", load, "", 1.0);
    // Sluice's figures: its runs on either side of the peer together. Both moved the same
    // events, so their rate together is the harmonic mean of the two (events over time);
    // CPU per event is the plain mean.
    auto rate = [&](const char* key) { return 2 / (1 / get(before, key) + 1 / get(after, key)); };
    const double sluice = rate("steady_events_per_s");
    const double sluice_cpu =
        (get(before, "cpu_s_per_million_events") + get(after, "cpu_s_per_million_events")) / 2;
    const double sluice_rss = std::max(get(before, "peak_rss_mib"), get(after, "peak_rss_mib"));
    nlohmann::json r = {
        {"sluice_steady_events_per_s", sluice},
        {"sluice_over_connect_rate", sluice / get(connect, "steady_events_per_s")},
        {"sluice_over_load_data_rate", sluice / load},
        {"connect_over_load_data_rate", get(connect, "steady_events_per_s") / load},
        {"sluice_over_connect_total_rate", rate("events_per_s") / get(connect, "events_per_s")},
        {"sluice_over_connect_cpu_per_event",
         sluice_cpu / get(connect, "cpu_s_per_million_events")},
        // Sluice's whole process against Connect's after its start-up: the comparison most in
        // Connect's favour.
        {"sluice_over_connect_cpu_per_event_connect_after_startup",
         sluice_cpu / get(connect, "cpu_s_per_million_events_after_startup")},
        {"sluice_over_connect_peak_rss", sluice_rss / get(connect, "peak_rss_mib")},
    };
    std::printf(
        "\nSluice (both runs together, steady): %.2fx Kafka Connect's rate, %.2fx LOAD DATA's;"
        "\nKafka Connect: %.2fx LOAD DATA's. Including start-up: Sluice %.2fx Connect's rate."
        "\nCPU per event (whole processes): Sluice %.2fx Connect's (%.2fx Connect's after its "
        "start-up)."
        "\nPeak RSS: Sluice %.2fx Connect's.\n",
        r["sluice_over_connect_rate"].get<double>(), r["sluice_over_load_data_rate"].get<double>(),
        r["connect_over_load_data_rate"].get<double>(),
        r["sluice_over_connect_total_rate"].get<double>(),
        r["sluice_over_connect_cpu_per_event"].get<double>(),
        r["sluice_over_connect_cpu_per_event_connect_after_startup"].get<double>(),
        r["sluice_over_connect_peak_rss"].get<double>());
    if (get(connect, "rows_matching_sluice") != static_cast<double>(o_.events)) {
      std::printf("WARNING: only %.0f of Kafka Connect's rows equal Sluice's\n",
                  get(connect, "rows_matching_sluice"));
    }
    return r;
  }

  Options o_;
  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<KafkaCluster> kafka_;
  std::string bootstrap_;
  double produce_s_ = 0;
  double connect_produce_s_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-e2e-bench: direct, drain, replay and LOAD DATA INFILE rates side by side"};
  Options o;
  app.add_option("--events", o.events, "Events to load and ingest")->capture_default_str();
  app.add_option("--partitions", o.partitions, "Partitions (the broker keeps ~5 MiB each)")
      ->capture_default_str();
  app.add_option("--writers", o.writers, "mariadb.writers")->capture_default_str();
  app.add_option("--batch-rows", o.batch_rows, "batch.max_rows")->capture_default_str();
  app.add_option("--broker", o.broker, "mock (the test broker), kafka (Apache Kafka), or both")
      ->check(CLI::IsMember({"mock", "kafka", "both"}))
      ->capture_default_str();
  app.add_option(
         "--instances", o.instances,
         "Also run direct with each of these numbers of instances in one group (e.g. 1 2 3)")
      ->capture_default_str();
  app.add_option("--skip", o.skip, "Stages to leave out: drain, replay")
      ->check(CLI::IsMember({"drain", "replay"}));
  app.add_option("--peers", o.peers,
                 "Peers to run beside Sluice: connect (Kafka Connect + Debezium JDBC sink; needs "
                 "--broker kafka or both; jars from scripts/kafka-connect fetch)")
      ->check(CLI::IsMember({"connect"}));
  app.add_option("--connect-batch", o.connect_batch,
                 "The Debezium sink's batch.size and the worker's consumer.max.poll.records")
      ->capture_default_str();
  app.add_option("--connect-tasks", o.connect_tasks,
                 "The Debezium sink's tasks.max (default: --writers)");
  app.add_option("--connect-jdbc-options", o.connect_jdbc_options,
                 "MariaDB JDBC driver options for the sink's connection.url (e.g. "
                 "useServerPrepStmts=true)")
      ->capture_default_str();
  app.add_option("--kafka-property", o.kafka_properties,
                 "kafka.properties for Sluice's consumer, key=value (repeatable), e.g. "
                 "queued.max.messages.kbytes=32768");
  app.add_option("--insert-method", o.insert_method, "mariadb.insert_method")
      ->check(CLI::IsMember({"load_data", "multi_insert"}))
      ->capture_default_str();
  app.add_flag("--server-defaults", o.server_defaults,
               "MariaDB with its own default settings (innodb_autoinc_lock_mode=1 and the rest), "
               "as a new user meets it");
  app.add_option("--json", o.json_path, "Where to write the JSON (default .local/bench/)");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return Bench(o).run();
  } catch (const std::exception& e) {
    std::cerr << "sluice-e2e-bench: " << e.what() << "\n";
    return 1;
  }
}
