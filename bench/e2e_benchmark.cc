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
//               SELECT ... INTO OUTFILE, into an identical empty table.
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
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

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

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double cpu_seconds(const struct rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Options {
  uint64_t events = 500'000;
  int partitions = 32;
  int writers = 2;
  int batch_rows = 5000;
  std::string broker = "mock";  ///< mock | kafka | both
  /// Direct runs with this many instances in one consumer group, each (1: the direct run).
  std::vector<int> instances = {1};
  std::string json_path;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int run() {
    step("starting a private MariaDB (durable: innodb_flush_log_at_trx_commit=1)");
    db_ = std::make_unique<MariaDb>(dir_.file("mariadb"));
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
      nlohmann::json direct = run_direct(name, 1);
      nlohmann::json fleet = nlohmann::json::object();
      for (const int n : o_.instances) {
        if (n > 1) fleet[std::to_string(n)] = run_direct(name, n);
      }
      nlohmann::json drain = run_drain(name);
      nlohmann::json replay = run_replay(name);
      runs[name] = {{"produce_seconds", produce_s_},
                    {"direct", direct},
                    {"drain", drain},
                    {"replay", replay}};
      if (!fleet.empty()) runs[name]["direct_instances"] = fleet;
      broker_.reset();
      kafka_.reset();
    }
    nlohmann::json ceiling = run_load_data(brokers.front());
    report(runs, ceiling);
    return 0;
  }

 private:
  void step(const std::string& what) { std::cerr << "e2e: " << what << "\n"; }

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

  /// A config for one Sluice run into `database`, with its own folder (spool, log).
  std::string config(const TempDir& run_dir, const std::string& database, const std::string& group,
                     const std::string& instance_id = "") {
    db_->exec("CREATE DATABASE IF NOT EXISTS `" + database + "`");
    db_->exec("GRANT ALL ON `" + database + "`.* TO 'sluice'@'localhost'");
    return sluice::testing::write_config(
        run_dir, bootstrap_, *db_, {kTopic}, group,
        {.extra_yaml = "batch:\n  max_rows: " + std::to_string(o_.batch_rows) + "\n",
         .mariadb_lines = "  writers: " + std::to_string(o_.writers) + "\n",
         .database = database,
         .instance_id = instance_id});
  }

  int64_t committed(const std::string& database) {
    try {
      return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM `" + database +
                         "`.sluice_offsets");
    } catch (const std::exception&) {
      return 0;  // not created yet
    }
  }

  /// Polls until `database` has all events; returns when 10% and 100% were reached.
  std::pair<Clock::time_point, Clock::time_point> wait_for_all(const std::string& database,
                                                               const std::vector<Process*>& fleet) {
    Clock::time_point tenth{};
    const auto n = static_cast<int64_t>(o_.events);
    for (;;) {
      const int64_t done = committed(database);
      if (tenth == Clock::time_point{} && done >= n / 10) tenth = Clock::now();
      if (done >= n) return {tenth, Clock::now()};
      for (Process* sluice : fleet) {
        if (!sluice->running()) throw std::runtime_error("sluice exited: " + sluice->log());
      }
      std::this_thread::sleep_for(20ms);
    }
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
                               std::to_string(o_.events));
    }
    return {{"peak_rss_mib", rss},
            {"cpu_s", cpu},
            {"cpu_s_per_million_events", cpu * 1e6 / static_cast<double>(o_.events)}};
  }

  /// `instances` processes of one group (each its own spool and instance id) into one empty
  /// database; on this 2-core machine they share the CPU with MariaDB.
  nlohmann::json run_direct(const std::string& broker, int instances) {
    step("direct: " + std::to_string(instances) + " instance(s) of sluice run into an empty " +
         "database");
    std::vector<std::unique_ptr<TempDir>> run_dirs;
    std::vector<std::string> configs;
    const std::string suffix = instances == 1 ? "" : "_" + std::to_string(instances);
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
    const auto [tenth, done] = wait_for_all(database, fleet);
    const double total = std::chrono::duration<double>(done - started).count();
    const double steady = std::chrono::duration<double>(done - tenth).count();
    auto out = stop(fleet, database);
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
    const auto [tenth, done] = wait_for_all(database, {sluice.get()});
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
                             {"replay_events_per_s", summary["events_per_s"]}};
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
        {"batch_rows", o_.batch_rows},
        {"brokers", runs},
        {"load_data_infile", ceiling},
    };
    std::printf("\nSluice end-to-end benchmark, %s, commit %s, %ld CPUs (%s)\n", date,
                commit.c_str(), sysconf(_SC_NPROCESSORS_ONLN), cpu.c_str());
    std::printf("%lu NavigationTiming events, %d partitions, %d writers, batches of %d rows\n\n",
                static_cast<unsigned long>(o_.events), o_.partitions, o_.writers, o_.batch_rows);
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
      const auto& drain = run["drain"];
      row("direct, steady (10% to 100%)" + b, direct["steady_events_per_s"], &direct);
      row("direct, including start-up" + b, direct["events_per_s"], nullptr);
      if (run.contains("direct_instances")) {
        for (const auto& [n, d] : run["direct_instances"].items()) {
          row("direct, " + n + " instances, steady" + b, d["steady_events_per_s"], &d);
          row("direct, " + n + " instances, incl. start-up" + b, d["events_per_s"], nullptr);
          j["ratios"][name]["direct_" + n + "_instances_steady"] =
              d["steady_events_per_s"].get<double>() / load;
        }
      }
      row("drain of the spooled backlog" + b, drain["events_per_s"], &drain);
      row("spooling (Kafka -> spool, paused)" + b, drain["spool_fill_events_per_s"], nullptr);
      const auto& replay = run["replay"];
      row("replay of the topic, start to exit" + b, replay["events_per_s"], nullptr);
      row("  the same again (all present: no load)" + b, replay["second_run_events_per_s"],
          nullptr);
      row("  dry run, no table (read and decode only)" + b, replay["dry_run_empty_events_per_s"],
          nullptr);
      j["ratios"][name]["direct_steady"] = direct["steady_events_per_s"].get<double>() / load;
      j["ratios"][name]["direct_total"] = direct["events_per_s"].get<double>() / load;
      j["ratios"][name]["drain"] = drain["events_per_s"].get<double>() / load;
      j["ratios"][name]["replay"] = replay["events_per_s"].get<double>() / load;
    }
    row("server LOAD DATA INFILE (ceiling)", load, nullptr);
    std::printf("\nLOAD DATA file %.1f MiB\n", ceiling["file_bytes"].get<double>() / 1048576.0);
    std::string path = o_.json_path;
    if (path.empty()) {
      std::filesystem::create_directories(sluice::testing::source_dir() + "/.local/bench");
      path = sluice::testing::source_dir() + "/.local/bench/e2e-" + date + ".json";
    }
    std::ofstream(path) << j.dump(2) << "\n";
    std::printf("JSON: %s\n", path.c_str());
  }

  Options o_;
  TempDir dir_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<KafkaCluster> kafka_;
  std::string bootstrap_;
  double produce_s_ = 0;
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
