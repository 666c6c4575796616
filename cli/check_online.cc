#include "cli/check_online.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <regex>
#include <thread>

#include "ingest/kafka_range_reader.h"
#include "ingest/schema_repository.h"
#include "storage/db_error.h"
#include "storage/mariadb_connection.h"

namespace sluice::cli {

namespace {

using Rows = std::vector<std::vector<std::optional<std::string>>>;

class Report {
 public:
  void ok(const std::string& what) { std::cout << "\u2714 " << what << "\n"; }
  void fail(const std::string& what, const std::string& fix) {
    ++failures_;
    std::cout << "\u2718 " << what << "\n    fix: " << fix << "\n";
  }
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
};

std::string bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return out;
}

void check_kafka(const Config& config, Report& r) {
  auto reader = ingest::KafkaRangeReader::create(config.kafka);
  if (!reader) {
    r.fail("kafka: " + reader.status().message(), "correct kafka.properties");
    return;
  }
  ingest::KafkaRangeReader::Cluster cluster;
  if (auto st = (*reader)->cluster(cluster, std::chrono::seconds(10)); !st) {
    r.fail("kafka " + config.kafka.brokers + ": " + st.message(),
           "check kafka.brokers, the network, and TLS/SASL in kafka.properties");
    return;
  }
  std::string brokers;
  for (const auto& b : cluster.brokers) brokers += (brokers.empty() ? "" : ", ") + b;
  r.ok("kafka: " + std::to_string(cluster.brokers.size()) + " broker(s): " + brokers);
  for (const auto& topic : config.kafka.topics) {
    if (topic.starts_with("^")) {
      int matched = 0;
      try {
        const std::regex re(topic.substr(1));
        for (const auto& [name, t] : cluster.topics) {
          if (std::regex_search(name, re, std::regex_constants::match_continuous)) ++matched;
        }
      } catch (const std::regex_error&) {
        r.fail("kafka.topics: '" + topic + "' is not a regular expression this check can read",
               "librdkafka may still accept it; check its syntax");
        continue;
      }
      if (matched == 0) {
        r.fail("kafka.topics: no topic matches " + topic + " yet",
               "check the pattern (a topic created later is picked up within "
               "topic.metadata.refresh.interval.ms)");
      } else {
        r.ok("kafka.topics: " + topic + " matches " + std::to_string(matched) + " topic(s)");
      }
      continue;
    }
    const auto it = cluster.topics.find(topic);
    if (it == cluster.topics.end()) {
      r.fail("kafka.topics: no topic " + topic,
             "create it, or correct kafka.topics (Sluice never creates data topics)");
    } else {
      r.ok("kafka.topics: " + topic + ", " + std::to_string(it->second.partitions) +
           " partition(s)");
    }
  }
  const int want = std::min(3, static_cast<int>(cluster.brokers.size()));
  const auto fleet = cluster.topics.find(config.fleet.topic);
  if (fleet == cluster.topics.end()) {
    r.ok("fleet.topic: " + config.fleet.topic + " does not exist yet: the first instance creates " +
         "it (1 partition, replication " + std::to_string(want) + ", compacted)");
  } else if (fleet->second.partitions != 1) {
    r.fail("fleet.topic: " + config.fleet.topic + " has " +
               std::to_string(fleet->second.partitions) + " partitions, not 1",
           "it is not Sluice's: name another fleet.topic");
  } else if (fleet->second.replication < want) {
    r.fail("fleet.topic: " + config.fleet.topic + " is replicated on " +
               std::to_string(fleet->second.replication) + " broker(s), not " +
               std::to_string(want),
           "raise its replication (kafka-reassign-partitions) or recreate it while every "
           "instance is stopped: its records are the fleet's pause");
  } else {
    r.ok("fleet.topic: " + config.fleet.topic + ", replication " +
         std::to_string(fleet->second.replication));
  }
}

/// Runs `sql`; on failure reports it and returns false.
bool run(storage::MariaDbConnection& c, const std::string& sql, const std::string& what,
         Report& r, const std::string& fix) {
  if (const auto st = c.exec(sql); !st.is_ok()) {
    r.fail(what + ": " + st.describe(), fix);
    return false;
  }
  return true;
}

std::optional<std::string> value(storage::MariaDbConnection& c, const std::string& sql) {
  Rows rows;
  if (!c.query(sql, rows).is_ok() || rows.empty() || rows[0].empty()) return std::nullopt;
  return rows[0][0];
}

void check_mariadb(const Config& config, Report& r) {
  const auto& m = config.mariadb;
  const std::string who = describe_endpoint(m) + "/" + m.database;
  std::unique_ptr<storage::MariaDbConnection> c;
  if (const auto st = storage::MariaDbConnection::open(m, c); !st.is_ok()) {
    r.fail("mariadb " + who + ": " + st.describe(),
           "check mariadb.host/port/socket, user, password_file, database and tls; the "
           "account needs CREATE, SELECT, INSERT, UPDATE on the database");
    return;
  }
  r.ok("mariadb " + who + ": connected, server " + value(*c, "SELECT VERSION()").value_or("?"));
  if (value(*c, "SELECT @@read_only").value_or("0") != "0") {
    r.fail("mariadb: the server is read-only (a replica?)",
           "point mariadb at the primary; Sluice would spool until it is writable");
  }
  // What Sluice does, tried on a scratch table: create (a table per schema revision), insert
  // and load, update (sluice_offsets), read.
  const std::string table = "sluice_check_online";
  const std::string grants = "GRANT CREATE, SELECT, INSERT, UPDATE ON `" + m.database +
                             "`.* TO the account (docs/security.md)";
  bool ok = run(*c,
                "CREATE TABLE IF NOT EXISTS " + table +
                    " (id INT PRIMARY KEY, v VARCHAR(16)) ENGINE=InnoDB",
                "mariadb: CREATE TABLE", r, grants) &&
            run(*c, "INSERT INTO " + table + " VALUES (1, 'a') ON DUPLICATE KEY UPDATE v = 'a'",
                "mariadb: INSERT", r, grants) &&
            run(*c, "UPDATE " + table + " SET v = 'b' WHERE id = 1", "mariadb: UPDATE", r, grants);
  Rows rows;
  if (ok) {
    if (const auto st = c->query("SELECT v FROM " + table, rows); !st.is_ok()) {
      r.fail("mariadb: SELECT: " + st.describe(), grants);
      ok = false;
    }
  }
  if (ok && config.mariadb.insert_method == InsertMethod::kLoadData) {
    if (value(*c, "SELECT @@local_infile").value_or("0") == "0") {
      r.fail("mariadb: local_infile is OFF, and mariadb.insert_method is load_data",
             "SET GLOBAL local_infile = ON (and local_infile in my.cnf), or insert_method: "
             "multi_insert (slower)");
      ok = false;
    } else {
      const auto st = c->load_data("LOAD DATA LOCAL INFILE 'sluice-check' IGNORE INTO TABLE " +
                                       table + " (id, v)",
                                   "sluice-check", "2\tc\n");
      if (!st.is_ok()) {
        r.fail("mariadb: LOAD DATA LOCAL: " + st.describe(),
               "allow local_infile on the server, or insert_method: multi_insert");
        ok = false;
      }
    }
  }
  if (ok) {
    // Only Event Platform tables grow: without ALTER their newer minor versions' writes fail
    // until it is granted. A note, not a failure.
    const auto alter = c->exec("ALTER TABLE " + table + " ADD COLUMN IF NOT EXISTS w INT NULL");
    if (alter.is_ok()) {
      r.ok("mariadb: ALTER works (Event Platform tables can grow a column at a time)");
    } else if (storage::is_access_denied(alter.code)) {
      r.ok("mariadb: ALTER is not granted: Event Platform tables cannot grow (GRANT ALTER ON `" +
           m.database + "`.* if newer minor versions add fields)");
    } else {
      r.fail("mariadb: ALTER TABLE ... ADD COLUMN: " + alter.describe(),
             "Event Platform tables grow with it: see MariaDB's error");
    }
  }
  if (ok) r.ok("mariadb: CREATE, INSERT, UPDATE, SELECT" +
               std::string(m.insert_method == InsertMethod::kLoadData ? ", LOAD DATA LOCAL" : "") +
               " work as " + m.user);
  if (!c->exec("DROP TABLE IF EXISTS " + table).is_ok()) {
    r.ok("mariadb: the scratch table " + table + " is left (no DROP grant; Sluice needs none): "
         "drop it by hand");
  }
  const auto packet = value(*c, "SELECT @@max_allowed_packet");
  if (packet && std::stoull(*packet) < static_cast<uint64_t>(config.batch.max_bytes) + 65536) {
    r.fail("mariadb: max_allowed_packet " + bytes(std::stoull(*packet)) +
               " is below batch.max_bytes " + bytes(config.batch.max_bytes),
           "raise max_allowed_packet on the server, or lower batch.max_bytes (multi_insert "
           "sends a batch as one statement)");
  } else if (packet) {
    r.ok("mariadb: max_allowed_packet " + bytes(std::stoull(*packet)) + " holds a batch (" +
         bytes(config.batch.max_bytes) + ")");
  }
  const auto lock_mode = value(*c, "SELECT @@innodb_autoinc_lock_mode").value_or("?");
  r.ok("mariadb: innodb_autoinc_lock_mode " + lock_mode +
       (lock_mode == "2" ? " (interleaved: writers never wait for one another's AUTO-INC)"
                         : " (writers into one table take turns at its AUTO-INC lock; 2 is "
                           "faster, with binlog_format=ROW)"));
  for (const auto& replica : config.replicas) {
    std::unique_ptr<storage::MariaDbConnection> rc;
    const std::string name = "replica " + describe_endpoint(replica);
    if (const auto st = storage::MariaDbConnection::open(replica, rc); !st.is_ok()) {
      r.fail(name + ": " + st.describe(),
             "check its host/port, user, password_file and tls (SELECT is enough)");
      continue;
    }
    Rows ignored;
    if (const auto st = rc->query("SELECT MAX(next_offset) FROM sluice_offsets", ignored);
        !st.is_ok() && st.describe().find("doesn't exist") == std::string::npos) {
      r.fail(name + ": cannot read sluice_offsets: " + st.describe(),
             "GRANT SELECT ON `" + replica.database + "`.* to its account");
      continue;
    }
    r.ok(name + ": connected, reads sluice_offsets");
  }
}

void check_spool(const Config& config, Report& r) {
  namespace fs = std::filesystem;
  fs::path at = config.spool.path;
  std::error_code ec;
  while (!at.empty() && !fs::exists(at, ec)) at = at.parent_path();
  if (at.empty()) at = "/";
  if (access(at.c_str(), W_OK | X_OK) != 0) {
    r.fail("spool.path " + config.spool.path + ": " + at.string() + " is not writable by this user",
           "run the check as the service's user (runuser -u sluice -- sluice check-config "
           "--online ...), or give that user the directory");
    return;
  }
  struct statvfs disk {};
  if (statvfs(at.c_str(), &disk) != 0) {
    r.fail("spool.path " + config.spool.path + ": cannot read the disk's free space",
           "check the path");
    return;
  }
  const uint64_t free = static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
  const uint64_t held = fs::exists(config.spool.path, ec) ? [&] {
    uint64_t n = 0;
    for (const auto& f : fs::recursive_directory_iterator(config.spool.path, ec)) {
      if (f.is_regular_file(ec)) n += f.file_size(ec);
    }
    return n;
  }()
                                                           : 0;
  if (free + held < static_cast<uint64_t>(config.spool.max_bytes)) {
    r.fail("spool.path " + config.spool.path + ": " + bytes(free) +
               " free, below spool.max_bytes " + bytes(config.spool.max_bytes),
           "lower spool.max_bytes or give the spool a larger disk (a full disk stops fetching "
           "before max_bytes does)");
  } else {
    r.ok("spool.path " + config.spool.path + ": writable, " + bytes(free) + " free (max_bytes " +
         bytes(config.spool.max_bytes) + ")");
  }
}

/// The schema repository, as the service reaches it: a revision no repository has is asked
/// for, and any definite answer (a 404 is expected) shows the repository reached and its
/// certificate trusted; no answer, or one that refuses Sluice, is a failure naming why.
void check_schema_repository(const Config& config, Report& r) {
  const auto& repo = config.schema_repository;
  if (repo.url.empty()) return;
  ingest::SchemaRepository probe({.url = repo.url,
                                  .ca_file = repo.ca_file,
                                  .timeout = std::chrono::milliseconds(repo.timeout_ms)});
  constexpr std::string_view kName = "SluiceCheckConfigProbe";
  const std::string url = probe.url_for(kName, 1);
  auto answer = probe.ask(kName, 1);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(repo.timeout_ms) + std::chrono::seconds(1);
  while (probe.completed() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  answer = probe.ask(kName, 1);
  if (answer.state == ingest::SchemaSource::State::kPending) {
    const std::string why = answer.detail.empty() ? "no answer in time" : answer.detail;
    r.fail("schemas.repository_url: " + url + ": " + why,
           why.find("HTTP 40") != std::string::npos
               ? "let Sluice read the repository, and serve it so that a missing revision "
                 "answers 404 (its events would wait, not dead-letter)"
               : "check the URL, the route and the certificate (schemas.ca_file names the CA "
                 "for a repository of your own)");
    return;
  }
  r.ok("schemas.repository_url: " + repo.url + " answers (" +
       (answer.state == ingest::SchemaSource::State::kFound ? std::string("HTTP 200")
                                                           : answer.detail) +
       " for a revision it should not have)" +
       (repo.url.starts_with("http://") ? "; plain http: prefer https" : ""));
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path at = repo.cache_path;
  while (!at.empty() && !fs::exists(at, ec)) at = at.parent_path();
  if (at.empty() || access(at.c_str(), W_OK | X_OK) != 0) {
    r.fail("schemas.cache_path " + repo.cache_path + " is not writable by this user",
           "give the service's user the folder (fetched revisions are kept there)");
  } else {
    r.ok("schemas.cache_path " + repo.cache_path + ": writable");
  }
}

}  // namespace

int check_online(const Config& config) {
  Report r;
  check_kafka(config, r);
  check_mariadb(config, r);
  check_spool(config, r);
  check_schema_repository(config, r);
  if (r.failures() > 0) {
    std::cout << r.failures() << " check(s) failed\n";
    return 1;
  }
  std::cout << "every check passed\n";
  return 0;
}

}  // namespace sluice::cli
