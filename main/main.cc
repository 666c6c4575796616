// The `sluice` command: parses the command line and wires the components together.

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "admin/admin_client.h"
#include "admin/admin_server.h"
#include "admin/metrics.h"
#include "admin/status_json.h"
#include "cli/admin_call.h"
#include "cli/bench_command.h"
#include "cli/check_online.h"
#include "cli/fleet_command.h"
#include "cli/offsets_command.h"
#include "cli/replay_command.h"
#include "cli/spool_command.h"
#include "common/config.h"
#include "common/logging.h"
#include "fleet/fleet.h"
#include "fleet/kafka_control_channel.h"
#include "ingest/kafka_source.h"
#include "ingest/pipeline.h"
#include "ingest/schema.h"
#include "main/pipeline_instance.h"
#include "main/service_notify.h"
#include "main/version.h"
#include "storage/mariadb_sink.h"
#include "storage/rocksdb_spool.h"

namespace {

using sluice::cli::add_admin_options;
using sluice::cli::admin_call;
using sluice::cli::AdminOptions;

/// `sluice run` exits with this when another running process uses its kafka.instance_id: the
/// unit's RestartPreventExitStatus= names it, so systemd does not bring back a twin that would
/// knock the healthy one out of the group.
constexpr int kExitDuplicateInstance = 7;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_signal(int /*sig*/) { g_stop.store(true); }
void on_hangup(int /*sig*/) { g_reload.store(true); }

/// SIGHUP: reads the config file again and applies what is safe — the log level at once, a new
/// MariaDB endpoint while paused (failover) — and says clearly what needs a restart.
void reload(const std::string& path, sluice::Config& running, sluice::ingest::Pipeline& pipeline,
            sluice::fleet::Fleet& fleet) {
  auto log = sluice::logger("main");
  auto loaded = sluice::load_config(path);
  if (!loaded) {
    log->error("reload refused, nothing changed: {}", loaded.status().message());
    return;
  }
  const auto changes = sluice::diff_config(running, *loaded);
  for (const auto& key : changes.need_restart) {
    log->warn("reload: {} changed; it needs a restart and was not applied", key);
  }
  if (changes.log_level) {
    sluice::set_log_level(loaded->log.level);
    running.log.level = loaded->log.level;
    log->info("reload: log.level is now {}", running.log.level);
  }
  if (changes.mariadb_endpoint) {
    if (auto st = pipeline.retarget(loaded->mariadb, std::chrono::seconds(60)); !st) {
      log->error("reload: MariaDB endpoint not changed: {}", st.message());
    } else {
      running.mariadb.take_endpoint(loaded->mariadb);
      fleet.set_endpoint(sluice::describe_endpoint(running.mariadb));
    }
  }
  if (!changes.log_level && !changes.mariadb_endpoint && changes.need_restart.empty()) {
    log->info("reload: {} has no changes", path);
  }
}

/// STATUS= for systemd (`systemctl status sluice`): the state and what the spool holds.
std::string service_status(const sluice::ingest::PipelineStatus& s) {
  std::string out(sluice::ingest::to_string(s.state));
  if (s.state == sluice::ingest::ServiceState::kPaused && !s.pause_reason.empty()) {
    // The reason is an operator's free text: one line, so it cannot add a field (READY=,
    // MAINPID=, ...) to the notification.
    std::string reason = s.pause_reason.substr(0, 200);
    for (char& c : reason) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    out += " (" + reason + ")";
  }
  out += "; spool " + std::to_string(s.spool_events) + " events";
  if (s.spool_full) out += " (full: fetching paused)";
  return out;
}

int check_config(const std::string& path, bool online) {
  auto config = sluice::load_config(path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  sluice::ingest::SchemaRegistry registry(config->schemas_path);
  auto schemas = registry.load_all();
  if (!schemas) {
    std::cerr << "sluice: invalid configuration: " << path
              << ": schemas.path: " << schemas.status().message() << "\n";
    return 2;
  }
  std::cout << path << ": ok (" << config->kafka.topics.size() << " topic(s), " << *schemas
            << " schema revision(s) in " << config->schemas_path << ")\n";
  if (const auto& repo = config->schema_repository; !repo.url.empty()) {
    registry.use_repository(nullptr, repo.cache_path);
    auto cached = registry.load_cached();
    if (!cached) {
      std::cerr << "sluice: " << repo.cache_path << ": " << cached.status().message() << "\n";
      return 2;
    }
    std::cout << "schema revisions not in " << config->schemas_path << " come from " << repo.url
              << "; " << *cached << " fetched before, kept in " << repo.cache_path << "\n";
  }
  if (!online) return 0;
  sluice::configure_logging("off", false);  // the report says it all, one line per check
  return sluice::cli::check_online(*config);
}

int run(const std::string& path) {
  auto config = sluice::load_config(path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  sluice::configure_logging(config->log.level, config->log.json);
  auto log = sluice::logger("main");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hangup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const auto group = config->kafka.group_id;
  const auto admin_config = config->admin;
  std::string token;
  if (!admin_config.token_file.empty()) {
    auto t = sluice::admin::read_token_file(admin_config.token_file);
    if (!t) {
      std::cerr << "sluice: invalid configuration: " << t.status().message() << "\n";
      return 2;
    }
    token = std::move(t).value();
  }
  sluice::fleet::RecordSigner signer;
  if (!config->fleet.key_file.empty()) {
    auto s = sluice::fleet::RecordSigner::from_file(config->fleet.key_file);
    if (!s) {
      std::cerr << "sluice: invalid configuration: " << s.status().message() << "\n";
      return 2;
    }
    signer = std::move(s).value();
  } else {
    log->warn(
        "fleet.key_file is not set: the fleet topic's records are not signed, so whoever can "
        "write to {} can pause, resume or forget instances (docs/security.md)",
        config->fleet.topic);
  }
  // Until when this instance may write: renewed by the fleet each time it reads one of its own
  // records back, checked by every writer (invariant 5).
  sluice::WriteLease lease(sluice::SystemClock::instance());
  auto spool = sluice::storage::RocksDbSpool::open(config->spool.path);
  if (!spool) {
    log->critical("{}", spool.status().message());
    return 1;
  }
  sluice::ingest::PipelineParts parts;
  parts.source = [kafka = config->kafka](sluice::ingest::SourceHandler handler) {
    return sluice::ingest::KafkaSource::create(kafka, std::move(handler));
  };
  parts.sinks = [group, &lease](const sluice::MariaDbConfig& mariadb) {
    return std::make_unique<sluice::storage::MariaDbSink>(
        mariadb, group, sluice::storage::BookkeepingTables{},
        sluice::storage::SinkMode::kExactlyOnce, &lease);
  };
  parts.lease = &lease;
  parts.spool = std::move(spool).value();
  if (const auto& repo = config->schema_repository; !repo.url.empty()) {
    parts.schemas =
        std::make_unique<sluice::ingest::SchemaRepository>(sluice::ingest::SchemaRepositoryOptions{
            .url = repo.url,
            .ca_file = repo.ca_file,
            .timeout = std::chrono::milliseconds(repo.timeout_ms)});
    log->info("schema revisions not under {} are fetched from {} and kept under {}",
              config->schemas_path, repo.url, repo.cache_path);
    if (repo.url.starts_with("http://")) {
      log->warn(
          "schemas.repository_url is plain http: whoever is on the path to {} can change "
          "the layout of the tables Sluice creates; prefer https",
          repo.url);
    }
  }
  // The fleet: every instance of the group shares one target state (paused or running) and
  // what its spool holds, through a control topic. Until this instance has read it, the
  // pipeline stays quiet.
  auto channel = sluice::fleet::KafkaControlChannel::open(
      {config->kafka.brokers, config->fleet.topic, config->kafka.properties,
       "sluice-fleet-" + config->kafka.instance_id});
  if (!channel) {
    log->critical("cannot use the fleet topic {}: {}", config->fleet.topic,
                  channel.status().message());
    return 1;
  }
  parts.start_held = true;
  // The fleet is made first (the pipeline asks it what other spools hold); the pipeline, as
  // the fleet's local instance, is attached to it once built, before the fleet runs.
  std::unique_ptr<sluice::admin::AdminServer> admin;
  auto fleet = std::make_unique<sluice::fleet::Fleet>(
      sluice::fleet::FleetOptions{
          .instance_id = config->kafka.instance_id,
          .heartbeat = std::chrono::milliseconds(config->fleet.heartbeat_ms),
          .lease = std::chrono::milliseconds(config->fleet.lease_ms),
          .instance_timeout = std::chrono::milliseconds(config->fleet.instance_timeout_ms),
          .version = sluice::kVersion,
          .mariadb = sluice::describe_endpoint(config->mariadb)},
      std::move(channel).value(), lease, std::move(signer));
  parts.fleet = fleet.get();
  sluice::admin::Metrics metrics({.version = sluice::kVersion,
                                  .revision = sluice::kGitRevision,
                                  .spool_max_bytes = config->spool.max_bytes,
                                  .topics = config->kafka.topics});
  // The replicas' freshness and positions (mariadb.replicas): the drain follows their lag, and
  // each committed batch names the tables to look at there.
  std::unique_ptr<sluice::admin::ReplicaFreshness> replicas;
  if (!config->replicas.empty()) {
    replicas =
        std::make_unique<sluice::admin::ReplicaFreshness>(config->replicas, config->kafka.group_id);
    parts.replica_positions = [&replicas] {
      std::vector<sluice::ingest::CommitHistory::ReplicaPositions> out;
      for (auto& r : replicas->snapshot()) {
        out.push_back({r.offsets_ok, r.offsets_read_at_ms, std::move(r.offsets)});
      }
      return out;
    };
  }
  parts.on_batch_committed = [&metrics, &replicas](const sluice::ingest::WriteReport& r) {
    metrics.observe_batch(r);
    if (replicas) {
      for (const auto& t : r.tables) replicas->follow(t.name);
    }
  };
  sluice::Config running = *config;
  sluice::ingest::Pipeline pipeline(std::move(config).value(), std::move(parts));
  sluice::PipelineInstance instance(pipeline);
  fleet->attach(instance);
  if (!admin_config.listen.empty()) {
    sluice::admin::AdminHandlers handlers;
    handlers.status_json = [&pipeline, &replicas, &fleet] {
      return sluice::admin::status_to_json(
          pipeline.status(), sluice::SystemClock::instance().wall_ms(),
          replicas ? replicas->snapshot() : std::vector<sluice::admin::ReplicaFreshness::Replica>{},
          fleet->status_json());
    };
    handlers.spool_json = [&pipeline] {
      const auto s = pipeline.status();
      std::optional<sluice::storage::PauseRecord> pause;
      if (s.state == sluice::ingest::ServiceState::kPaused) {
        pause = sluice::storage::PauseRecord{s.pause_reason, s.paused_since_ms};
      }
      return sluice::admin::spool_to_json(s.spool_partitions, pause);
    };
    handlers.metrics_text = [&pipeline, &metrics, &replicas, &fleet] {
      metrics.refresh(pipeline.status(), pipeline.stats(),
                      sluice::SystemClock::instance().wall_ms());
      if (replicas) metrics.refresh_replicas(replicas->snapshot());
      metrics.refresh_fleet(fleet->status_json());
      return metrics.serialize();
    };
    // One pause for the fleet: every live instance applies it and is quiet before it answers.
    // With `local`, this instance alone at once (the fleet topic out of reach); the fleet
    // adopts it when it can.
    handlers.pause = [&fleet, status = handlers.status_json](
                         const std::string& reason, bool local) -> sluice::Result<std::string> {
      if (auto st = local ? fleet->pause_locally(reason, std::chrono::seconds(60))
                          : fleet->pause(reason, std::chrono::seconds(60));
          !st) {
        return st;
      }
      return status();
    };
    handlers.resume = [&fleet, status = handlers.status_json]() -> sluice::Result<std::string> {
      if (auto st = fleet->resume(std::chrono::seconds(60)); !st) return st;
      return status();
    };
    auto server =
        sluice::admin::AdminServer::start(admin_config.listen, token, std::move(handlers));
    if (!server) {
      log->critical("{}", server.status().message());
      return 1;
    }
    admin = std::move(server).value();
    instance.set_admin(admin->address());
  }
  log->info("sluice {} ({}) starting (config {})", sluice::kVersion, sluice::kGitRevision, path);
  std::thread reloader([&] {
    while (!g_stop.load()) {
      if (g_reload.exchange(false)) reload(path, running, pipeline, *fleet);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  // Pipeline::run, spelled out so systemd hears READY once the pipeline has started (consuming,
  // or knowingly paused or in an outage) and the watchdog hears of every round of the loop.
  sluice::cli::ServiceNotifier notifier([&pipeline] { return service_status(pipeline.status()); });
  auto st = pipeline.start();
  if (st) {
    fleet->start();
    // READY once the start is no longer held by the fleet (it has read the target state):
    // then the state says what systemd is told. A fleet topic out of reach does not hold the
    // start-up past TimeoutStartSec: after 10 s the service is ready, "starting".
    const auto started = std::chrono::steady_clock::now();
    bool ready = false;
    while (!g_stop.load() && pipeline.failed().is_ok() && fleet->conflict().is_ok()) {
      pipeline.step();
      if (!ready && (pipeline.status().state != sluice::ingest::ServiceState::kStarting ||
                     std::chrono::steady_clock::now() - started > std::chrono::seconds(10))) {
        notifier.ready();
        ready = true;
      }
      notifier.beat();
    }
    notifier.stopping();
    pipeline.shutdown();
    st = pipeline.failed();
    if (st) st = fleet->conflict();
  }
  fleet->stop();  // its last record: stopped, with what the spool still holds
  g_stop.store(true);
  reloader.join();
  if (admin) admin->stop();
  if (!st) {
    log->critical("{}", st.message());
    return st.kind() == sluice::ErrorKind::kDuplicateInstance ? kExitDuplicateInstance : 1;
  }
  return 0;
}

int pause_resume_command(const AdminOptions& o, bool pause, const std::string& reason, bool local) {
  std::string body, out;
  nlohmann::json request = nlohmann::json::object();
  if (pause && !reason.empty()) request["reason"] = reason;
  if (pause && local) request["local"] = true;
  if (!request.empty()) body = request.dump();
  if (const int code = admin_call(o, "POST", pause ? "/v1/pause" : "/v1/resume", body, out)) {
    return code;
  }
  if (o.json) {
    std::cout << out;
    return 0;
  }
  const auto s = nlohmann::json::parse(out, nullptr, false);
  size_t live = 0, silent = 0;
  if (s.is_object() && s.contains("fleet")) {
    for (const auto& i : s["fleet"]["instances"]) {
      if (i.value("state", "") == "stopped") continue;
      ++(i.value("live", false) ? live : silent);
    }
  }
  std::cout << "state: " << (s.is_object() ? s.value("state", "?") : "?");
  if (pause && local) {
    std::cout << " (no open transaction, no connection to MariaDB, on this instance alone: the "
                 "fleet adopts the pause once its topic takes writes again)";
  } else if (pause) {
    std::cout << " (no open transaction, no connection to MariaDB";
    if (s.is_object() && s.contains("fleet")) {
      std::cout << ", on every instance of the fleet: " << live << " said so";
      if (silent > 0) std::cout << ", " << silent << " silent past its lease";
    }
    std::cout << ")";
  }
  if (s.is_object()) std::cout << "; spool " << s["spool"].value("events", 0) << " events";
  std::cout << "\n";
  return 0;
}

/// After a resume: the drain's progress every few seconds until the spool is empty (this
/// instance's; the fleet's other instances drain their own).
int wait_for_drain(const AdminOptions& o) {
  auto last_print = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (true) {
    std::string body;
    if (const int code = admin_call(o, "GET", "/v1/status", "", body)) return code;
    const auto s = nlohmann::json::parse(body, nullptr, false);
    if (!s.is_object()) {
      std::cerr << "sluice: the service answered something that is not JSON\n";
      return sluice::cli::kExitRefused;
    }
    const std::string state = s.value("state", "?");
    const int64_t left = s["spool"].value("events", int64_t{0});
    if (state == "paused") {
      std::cerr << "sluice: paused again before the spool was empty (" << left << " events left)\n";
      return sluice::cli::kExitRefused;
    }
    if (left == 0 && state == "running") {
      std::cout << "drained: the spool is empty; live traffic only\n";
      return 0;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_print >= std::chrono::seconds(5)) {
      last_print = now;
      const auto d = s.value("drain", nlohmann::json::object());
      std::cout << "draining: " << left << " events left (" << state << ")";
      if (d.contains("events_per_s") && d["events_per_s"].is_number()) {
        std::cout << ", " << static_cast<int64_t>(d["events_per_s"].get<double>()) << " events/s";
      }
      if (d.contains("eta_s") && d["eta_s"].is_number()) {
        std::cout << ", empty in about " << static_cast<int64_t>(d["eta_s"].get<double>()) << " s";
      }
      std::cout << std::endl;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

int status_command(const AdminOptions& o) {
  std::string body;
  if (const int code = admin_call(o, "GET", "/v1/status", "", body)) return code;
  if (o.json) {
    std::cout << body;
    return 0;
  }
  const auto s = nlohmann::json::parse(body, nullptr, false);
  if (s.is_discarded()) {
    std::cerr << "sluice: the service answered something that is not JSON\n";
    return 4;
  }
  std::cout << "state:     " << s.value("state", "?")
            << (s.value("fetch_paused", false) ? " (fetching paused: MariaDB is behind)" : "")
            << "\n";
  std::cout << "mariadb:   " << s.value("mariadb", "?")
            << (s.value("db_up", false) ? "" : " (not reached yet, or down)") << "\n";
  for (const auto& note : s.value("mariadb_notes", nlohmann::json::array())) {
    std::cout << "note:      " << note.get<std::string>() << "\n";
  }
  if (s.contains("outage")) {
    std::cout << "outage:    " << s["outage"].value("error", "") << "\n";
  }
  for (const auto& w : s.value("writers", nlohmann::json::array())) {
    if (w.value("state", "") != "failing") continue;
    std::cout << "FAILING:   writer " << w.value("writer", 0) << " on " << w.value("partition", "")
              << " (" << w.value("table", "") << "), " << w.value("attempts", 0)
              << " attempts: " << w.value("last_error", "") << "\n";
  }
  if (s.contains("pause")) {
    std::cout << "paused:    \"" << s["pause"].value("reason", "") << "\"\n";
  }
  std::cout << "spool:     " << s["spool"].value("events", 0) << " events, "
            << s["spool"].value("bytes", 0) << " bytes, oldest "
            << s["spool"].value("oldest_age_s", 0.0) << " s"
            << (s["spool"].value("full", false) ? " (FULL: fetching paused)" : "") << "\n";
  if (s["spool"].contains("error") && s["spool"]["error"].is_string()) {
    std::cout << "           CANNOT WRITE (fetching paused; retrying): "
              << s["spool"]["error"].get<std::string>() << "\n";
  }
  if (const auto d = s.value("drain", nlohmann::json::object()); !d.empty()) {
    // The drain: how fast, what limits it, when the spool will be empty.
    const bool limited = d.value("limiting", "none") != "none";
    if (limited || s["spool"].value("events", 0) > 0) {
      std::cout << "drain:     " << static_cast<int64_t>(d.value("events_per_s", 0.0))
                << " events/s";
      if (limited && d.contains("rate_limit") && d["rate_limit"].is_number()) {
        std::cout << ", limited to " << static_cast<int64_t>(d["rate_limit"].get<double>())
                  << " by " << d.value("limiting", "");
      }
      if (d.contains("eta_s") && d["eta_s"].is_number()) {
        std::cout << ", empty in about " << static_cast<int64_t>(d["eta_s"].get<double>()) << " s";
      }
      std::cout << "\n";
    }
    if (d.contains("replica_lag_s") && d["replica_lag_s"].is_number()) {
      std::cout << "replicas:  " << d["replica_lag_s"].get<double>()
                << " s behind Sluice's commits (the worst)\n";
    }
  }
  if (const auto sc = s.value("schemas", nlohmann::json::object()); !sc.empty()) {
    // Where the schema revisions in use came from, and whether the repository answers. Keys
    // without a value are null (no repository, no error).
    auto text = [&sc](const char* key) {
      return sc.contains(key) && sc[key].is_string() ? sc[key].get<std::string>() : "";
    };
    std::cout << "schemas:   " << sc.value("from_path", 0) << " from " << text("path");
    if (!text("repository").empty()) {
      std::cout << ", " << sc.value("from_cache", 0) << " from the cache, "
                << sc.value("fetched", 0) << " fetched from " << text("repository") << ", "
                << sc.value("not_found", 0) << " not found there";
      if (sc.value("waiting", 0) > 0) std::cout << ", " << sc.value("waiting", 0) << " waiting";
      std::cout << "\n";
      if (!sc.value("reachable", true)) {
        std::cout << "           REPOSITORY NOT ANSWERING (" << sc.value("fetch_failures", 0)
                  << " failed fetches): " << text("last_error") << "\n";
      }
    } else {
      std::cout << "\n";
    }
  }
  std::cout << "\npartitions                          position   committed\n";
  for (const auto& p : s["partitions"]) {
    const std::string name =
        p["topic"].get<std::string>() + "/" + std::to_string(p["partition"].get<int>());
    std::cout << "  " << std::left << std::setw(32) << name << std::right << std::setw(10)
              << p["position"].get<int64_t>() << std::setw(12) << p["committed"].get<int64_t>()
              << "\n";
    if (p.contains("spool_error")) {
      std::cout << "      SPOOL UNREADABLE: " << p["spool_error"].get<std::string>() << "\n";
    }
    if (p.contains("waits_for_schema")) {
      std::cout << "      WAITS FOR ITS SCHEMA: " << p["waits_for_schema"].get<std::string>()
                << "\n";
    }
  }
  std::cout << "\ntables                        rows inserted  max(timestamp)  behind\n";
  for (const auto& t : s["tables"]) {
    std::cout << "  " << std::left << std::setw(28) << t["table"].get<std::string>() << std::right
              << std::setw(13) << t["rows_inserted"].get<uint64_t>() << "  " << std::setw(14)
              << (t["max_timestamp"].is_string() ? t["max_timestamp"].get<std::string>() : "-")
              << std::setw(7)
              << (t.contains("behind_s") ? std::to_string(t["behind_s"].get<int64_t>()) + "s" : "-")
              << "\n";
  }
  if (s.contains("replicas")) {
    // Primary and replicas side by side: per table, max(timestamp) and how far behind now.
    auto cell = [](const nlohmann::json& t) {
      if (!t.is_object() || !t["max_timestamp"].is_string()) return std::string("-");
      return t["max_timestamp"].get<std::string>() +
             (t.contains("behind_s") ? " (" + std::to_string(t["behind_s"].get<int64_t>()) + "s)"
                                     : "");
    };
    std::cout << "\nfreshness: max(timestamp) (behind now)\n";
    for (const auto& r : s["replicas"]) {
      if (r.contains("error")) {
        std::cout << "  replica " << r["endpoint"].get<std::string>()
                  << " unreachable: " << r["error"].get<std::string>() << "\n";
      }
    }
    for (const auto& t : s["tables"]) {
      const std::string table = t["table"];
      std::cout << "  " << std::left << std::setw(28) << table << std::right << " primary "
                << cell(t);
      for (const auto& r : s["replicas"]) {
        nlohmann::json on_replica;
        for (const auto& rt : r["tables"]) {
          if (rt["table"] == table) on_replica = rt;
        }
        std::cout << "   " << r["endpoint"].get<std::string>() << " " << cell(on_replica);
      }
      std::cout << "\n";
    }
  }
  if (s.contains("fleet")) {
    const auto& f = s["fleet"];
    const auto& t = f["target"];
    std::cout << "\nfleet (" << f["instances"].size() << " instance(s)), target: "
              << (t.is_object() ? t.value("state", "?") : std::string("not set"));
    if (t.is_object() && t.value("state", "") == "paused") {
      std::cout << " (\"" << t.value("reason", "") << "\" by " << t.value("by", "") << ")";
    }
    std::cout << "\n  instance                   state      live  heartbeat  partitions  spooled\n";
    for (const auto& i : f["instances"]) {
      std::cout << "  " << std::left << std::setw(26)
                << (i["id"].get<std::string>() + (i.value("self", false) ? " *" : ""))
                << std::setw(11) << i.value("state", "?") << std::setw(6)
                << (i.value("live", false) ? "yes" : "no") << std::right << std::setw(8)
                << std::fixed << std::setprecision(1) << i.value("heartbeat_age_s", -1.0) << " s"
                << std::setw(12) << i["partitions"].size() << std::setw(9)
                << i.value("spool_events", 0) << "\n";
      for (const auto& sp : i["spooled"]) {
        std::cout << "      spool holds " << sp["topic"].get<std::string>() << "/"
                  << sp["partition"].get<int>() << " offsets " << sp["first_offset"].get<int64_t>()
                  << ".." << sp["last_offset"].get<int64_t>() << "\n";
      }
    }
  }
  if (!s["kafka_gaps"].empty()) {
    std::cout << "\nEXPIRED FROM KAFKA BEFORE SLUICE READ THEM (lost upstream):\n";
    for (const auto& g : s["kafka_gaps"]) {
      std::cout << "  " << g["topic"].get<std::string>() << "/" << g["partition"].get<int>()
                << " offsets [" << g["from"].get<int64_t>() << ", " << g["to"].get<int64_t>()
                << "): " << g["lost"].get<int64_t>() << " events\n";
    }
  }
  return 0;
}

/// The required config file option (`--config FILE`, `-c FILE`).
void add_config_option(CLI::App* cmd, std::string& path) {
  cmd->add_option("--config,-c", path, "Config file (YAML)")->required();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sluice: Kafka event-logging streams into MariaDB, exactly once"};
  app.require_subcommand(1);
  std::string config_path;

  auto* run_cmd = app.add_subcommand("run", "Run the service in the foreground");
  add_config_option(run_cmd, config_path);
  auto* check_cmd = app.add_subcommand("check-config", "Validate a config file and its schemas");
  add_config_option(check_cmd, config_path);
  bool online = false;
  check_cmd->add_flag("--online", online,
                      "Also try every server, grant and setting it needs (exit 1 if one fails)");
  AdminOptions admin_options;
  auto* status_cmd =
      app.add_subcommand("status", "Show a running service's state, lag and freshness");
  add_admin_options(status_cmd, admin_options);
  std::string reason;
  auto* pause_cmd = app.add_subcommand(
      "pause", "Pause writing to MariaDB; returns once no transaction or connection is open");
  add_admin_options(pause_cmd, admin_options);
  pause_cmd->add_option("--reason", reason, "Why (shown in status)");
  bool local_pause = false;
  pause_cmd->add_flag("--local", local_pause,
                      "Pause this instance alone, at once, when the fleet topic cannot be "
                      "written (Kafka unreachable); the fleet adopts the pause when it can");
  auto* resume_cmd = app.add_subcommand("resume", "Resume writing; the spool drains first");
  add_admin_options(resume_cmd, admin_options);
  bool resume_wait = false;
  resume_cmd->add_flag("--wait", resume_wait,
                       "Then show the drain's progress and return once the spool is empty");
  sluice::cli::BenchOptions bench;
  auto* bench_cmd = app.add_subcommand(
      "bench", "Load-test the configured MariaDB through the real hot path (scratch tables)");
  add_config_option(bench_cmd, bench.config_path);
  bench_cmd->add_option("--schema", bench.schema, "Schema of the synthetic events")
      ->capture_default_str();
  bench_cmd->add_option("--revision", bench.revision, "Schema revision (default: the newest)");
  bench_cmd->add_option("--events", bench.events, "Events per run")->capture_default_str();
  bench_cmd->add_option("--batch-rows", bench.batch_rows, "Batch sizes to sweep")
      ->delimiter(',')
      ->capture_default_str();
  bench_cmd->add_option("--writers", bench.writers, "Writer counts to sweep")
      ->delimiter(',')
      ->capture_default_str();
  bench_cmd->add_option("--backlog", bench.backlog, "Backlog size to estimate the drain time of")
      ->capture_default_str();
  bench_cmd->add_flag("--keep", bench.keep, "Keep the scratch tables (sluice_bench_*)");
  bench_cmd->add_flag("--json", bench.json, "Print the results as JSON");
  sluice::cli::SpoolOptions spool;
  auto* spool_cmd = app.add_subcommand("spool", "Inspect, export or discard spooled events");
  spool_cmd->require_subcommand(1);
  auto spool_action = [&](const char* name, const char* help) {
    auto* cmd = spool_cmd->add_subcommand(name, help);
    cmd->add_option("--path", spool.path, "Spool directory of a stopped service");
    cmd->add_option("--config,-c", spool.config_path, "Config file (its spool.path)");
    cmd->final_callback([&spool, name] { spool.action = name; });
    return cmd;
  };
  auto* inspect_cmd = spool_action(
      "inspect", "Events and bytes per partition, offset range, oldest and newest event time");
  add_admin_options(inspect_cmd, spool.admin, /*with_config=*/false);
  for (auto* cmd : {spool_action("export", "Write spooled events as JSON lines"),
                    spool_action("discard", "Delete spooled events (only with --confirm)")}) {
    cmd->add_option("--topic", spool.topic, "Only this topic");
    cmd->add_option("--partition", spool.partition, "Only this partition (with --topic)");
  }
  auto* export_cmd = spool_cmd->get_subcommand("export");
  export_cmd->add_option("--output,-o", spool.output, "File to write (- for stdout)")
      ->capture_default_str();
  auto* discard_cmd = spool_cmd->get_subcommand("discard");
  discard_cmd->add_flag("--all", spool.all, "Every partition");
  discard_cmd->add_flag("--corrupt", spool.corrupt,
                        "Only blocks that do not decode: each is copied aside, then removed");
  discard_cmd->add_flag("--confirm", spool.confirm,
                        "Really delete (without it, only print what would be deleted)");
  const std::string version =
      std::string("sluice ") + sluice::kVersion + " (git " + sluice::kGitRevision + ")";
  app.set_version_flag("--version", version, "Print the version and exit");
  app.add_subcommand("version", "Print the version")->callback([&version] {
    std::cout << version << "\n";
  });

  sluice::cli::ReplayOptions replay;
  auto* replay_cmd = app.add_subcommand(
      "replay",
      "Re-read a range of a topic from Kafka (or a JSON-lines file) and write what MariaDB lacks: "
      "idempotent, outside the group's offsets");
  add_config_option(replay_cmd, replay.config_path);
  replay_cmd->add_option("--topic", replay.topic,
                         "The topic to read (with --from-file: the topic "
                         "of capsule lines, and a filter)");
  replay_cmd->add_option("--partition", replay.partitions,
                         "Only this partition (repeatable; default: every one)");
  replay_cmd->add_option("--from-time", replay.from_time,
                         "Start at the first event at or after this ISO-8601 time");
  auto* from_offset = replay_cmd->add_option("--from-offset", replay.from_offset,
                                             "Start at this offset (in each partition)");
  replay_cmd->add_option("--to-time", replay.to_time,
                         "Stop before the first event at or after this time (default: the end "
                         "of the log when the replay starts)");
  auto* to_offset = replay_cmd->add_option("--to-offset", replay.to_offset,
                                           "Stop before this offset: the range is [from, to)");
  replay_cmd->add_option("--schema", replay.schemas, "Only events of this schema (repeatable)");
  replay_cmd->add_option("--from-file", replay.from_file,
                         "Replay a JSON-lines file (a `sluice spool export`, or capsules) "
                         "instead of Kafka");
  replay_cmd->add_option("--target-database", replay.target_database,
                         "Write into this database instead of mariadb.database");
  replay_cmd->add_flag("--dry-run", replay.dry_run,
                       "Read and count what would be written; "
                       "write nothing");
  replay_cmd->add_flag("--json", replay.json, "Print the summary as JSON");
  replay_cmd->add_flag("--confirm", replay.confirm,
                       "Go ahead with a range wider than replay.confirm_above_events");
  replay_cmd->add_option("--max-rate", replay.max_rate,
                         "Read at most this many events per second (default: drain.max_rate; "
                         "0: no cap); the replicas' lag is followed as the drain follows it");
  replay_cmd->add_flag("--during-pause", replay.during_pause,
                       "Write even while the fleet is paused (refused otherwise)");

  sluice::cli::FleetOptions fleet_options;
  auto* fleet_cmd = app.add_subcommand(
      "fleet", "The instances of the group, from the fleet topic (no instance needs to run)");
  fleet_cmd->require_subcommand(1);
  auto* fleet_status = fleet_cmd->add_subcommand("status", "Every instance and the target state");
  add_config_option(fleet_status, fleet_options.config_path);
  fleet_status->add_flag("--json", fleet_options.json, "Print JSON");
  fleet_status->final_callback([&fleet_options] { fleet_options.action = "status"; });
  auto* fleet_forget = fleet_cmd->add_subcommand(
      "forget",
      "Forget an instance whose host is lost for good (what its spool held no longer "
      "counts); prints what it would do, does it only with --confirm");
  fleet_forget->add_option("instance", fleet_options.instance, "Instance id")->required();
  add_config_option(fleet_forget, fleet_options.config_path);
  fleet_forget->add_flag("--confirm", fleet_options.confirm, "Really forget it");
  fleet_forget->final_callback([&fleet_options] { fleet_options.action = "forget"; });

  sluice::cli::OffsetsOptions offsets;
  auto* offsets_cmd = app.add_subcommand(
      "offsets", "Every position of a partition, and moving them while the fleet is stopped");
  offsets_cmd->require_subcommand(1);
  auto* offsets_show = offsets_cmd->add_subcommand(
      "show", "MariaDB's next offset, the group's, each spool's range, Kafka's log start and end");
  add_config_option(offsets_show, offsets.config_path);
  offsets_show->add_option("--topic", offsets.topic, "Only this topic");
  offsets_show->add_option("--partition", offsets.partition, "Only this partition (with --topic)");
  offsets_show->add_flag("--json", offsets.json, "Print JSON");
  offsets_show->final_callback([&offsets] { offsets.action = "show"; });
  auto* offsets_set = offsets_cmd->add_subcommand(
      "set",
      "Move the group's offsets and MariaDB's together (only while every instance is stopped); "
      "--dry-run prints the plan, --confirm carries it out and records it");
  add_config_option(offsets_set, offsets.config_path);
  offsets_set->add_option("--topic", offsets.topic, "The topic")->required();
  offsets_set->add_option("--partition", offsets.partition, "Only this partition");
  offsets_set->add_option("--to-time", offsets.to_time,
                          "The first event at or after this ISO-8601 time (the log end if none)");
  auto* set_to_offset = offsets_set->add_option("--to-offset", offsets.to_offset, "This offset");
  offsets_set->add_flag("--to-earliest", offsets.to_earliest, "Kafka's log start");
  offsets_set->add_flag("--to-latest", offsets.to_latest, "Kafka's log end (skip the backlog)");
  auto* shift_by = offsets_set->add_option("--shift-by", offsets.shift_by,
                                           "Forward (or, negative, back) by this many offsets");
  offsets_set->add_flag("--dry-run", offsets.dry_run, "Print the plan; change nothing");
  offsets_set->add_flag("--confirm", offsets.confirm, "Carry the plan out");
  offsets_set->final_callback([&offsets] { offsets.action = "set"; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2 (CLI11's own codes are 100+).
    return app.exit(e) == 0 ? 0 : sluice::cli::kExitUsage;
  }
  if (fleet_cmd->parsed()) return sluice::cli::fleet_command(fleet_options);
  if (offsets_cmd->parsed()) {
    offsets.has_to_offset = set_to_offset->count() > 0;
    offsets.has_shift_by = shift_by->count() > 0;
    return sluice::cli::offsets_command(offsets);
  }
  if (replay_cmd->parsed()) {
    replay.has_from_offset = from_offset->count() > 0;
    replay.has_to_offset = to_offset->count() > 0;
    return sluice::cli::replay_command(replay);
  }
  if (run_cmd->parsed()) return run(config_path);
  if (check_cmd->parsed()) return check_config(config_path, online);
  if (bench_cmd->parsed()) return sluice::cli::bench_command(bench);
  if (spool_cmd->parsed()) return sluice::cli::spool_command(spool);
  if (status_cmd->parsed()) return status_command(admin_options);
  if (pause_cmd->parsed()) return pause_resume_command(admin_options, true, reason, local_pause);
  if (resume_cmd->parsed()) {
    const int code = pause_resume_command(admin_options, false, reason, false);
    return code != 0 || !resume_wait ? code : wait_for_drain(admin_options);
  }
  return 0;
}
