#pragma once
/// Sluice's configuration file (YAML). The keys are part of the external contract (DESIGN.md §4);
/// `load_config` checks every key's type and range and refuses unknown keys, reporting the file,
/// line and dotted key at fault. Relative paths are resolved against the config file's folder.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice {

struct KafkaConfig {
  std::string brokers = "127.0.0.1:9092";
  std::string group_id = "sluice";
  std::vector<std::string> topics;  ///< a name starting with ^ is a regex
  /// This instance's static group membership (group.instance.id): a restarted instance gets its
  /// partitions back at once instead of after a session timeout. Unique per instance of a
  /// group; defaults to the host name.
  std::string instance_id;
  std::map<std::string, std::string> properties;  ///< passed to librdkafka as-is
  /// kafka.sasl_password_file: a file whose first line becomes properties["sasl.password"],
  /// so the SASL password need not sit in the config file.
  std::string sasl_password_file;
};

enum class InsertMethod { kLoadData, kMultiInsert };

/// mariadb.tls (and a replica's tls): TLS for every session to that server. The files are
/// paths only; Connector/C reads them when a session opens, so no key material is held in
/// memory by Sluice or ever logged.
struct MariaDbTlsConfig {
  bool enabled = false;   ///< every session uses TLS, or fails to connect
  std::string ca_file;    ///< PEM CA certificate(s) the server's certificate must chain to
  std::string cert_file;  ///< PEM client certificate (for accounts that REQUIRE X509)
  std::string key_file;   ///< its private key (PEM, unencrypted; readable by sluice only)
  /// Check the server's certificate chain (against ca_file, or the system's CAs) and that it
  /// names the host connected to.
  bool verify_server_cert = true;

  friend bool operator==(const MariaDbTlsConfig&, const MariaDbTlsConfig&) = default;
};

struct MariaDbConfig {
  std::string host = "127.0.0.1";
  int port = 3306;
  std::string socket;  ///< when set, used instead of host/port
  std::string user = "sluice";
  std::string password_file;
  std::string password;  ///< read from password_file at load time
  std::string database = "log";
  int writers = 2;  ///< connections writing batches in parallel
  int connect_timeout_ms = 5000;
  int io_timeout_ms = 60000;  ///< read/write timeout of one round trip
  InsertMethod insert_method = InsertMethod::kLoadData;
  MariaDbTlsConfig tls;  ///< a replica without its own `tls` uses the primary's

  /// Takes `other`'s endpoint — host, port, socket, user, password_file, password — and keeps
  /// every other key (a retarget moves only where the service writes, DESIGN.md's failover).
  void take_endpoint(const MariaDbConfig& other) {
    host = other.host;
    port = other.port;
    socket = other.socket;
    user = other.user;
    password_file = other.password_file;
    password = other.password;
  }
};

struct BatchConfig {
  int64_t max_rows = 5000;
  int64_t max_bytes = 8 * 1024 * 1024;
  int64_t max_delay_ms = 500;
};

struct SpoolConfig {
  std::string path = "/var/lib/sluice/spool";
  int64_t max_bytes = 10LL * 1024 * 1024 * 1024;
};

/// schemas.repository_url and its companions: revisions not under schemas.path are fetched
/// from a schema repository over HTTP(S) the first time an event needs them, and cached.
struct SchemaRepositoryConfig {
  /// http:// or https:// URL of the folder holding `<SchemaName>/<revision>.json`; empty: none.
  std::string url;
  /// Where fetched revisions are kept (`<SchemaName>/<revision>.json`, as under schemas.path):
  /// they survive restarts and serve while the repository is down. Default: `schema-cache` beside
  /// the spool's folder.
  std::string cache_path;
  /// PEM file of the CAs an https repository's certificate must chain to; empty: the system's.
  std::string ca_file;
  /// Each fetch's whole time limit (connecting included).
  int64_t timeout_ms = 10'000;
};

struct AdminConfig {
  /// host:port. A non-loopback address is refused without token_file: pause and resume would
  /// be open to the network.
  std::string listen = "127.0.0.1:8470";
  std::string token_file;
};

struct LogConfig {
  std::string level = "info";
  bool json = false;
};

/// The instances of one consumer group share a target state (paused or running) and what their
/// spools hold through a control topic of their own (fleet/fleet.h).
struct FleetConfig {
  std::string topic;  ///< default: "_sluice_fleet.<group_id>"
  int64_t heartbeat_ms = 3000;
  /// The write lease: an instance writes to MariaDB only while it has read one of its own
  /// records back from the fleet topic within this (at least twice the heartbeat). A pause
  /// counts an instance it cannot hear as quiet once this (and a 5 s grace) has passed.
  int64_t lease_ms = 10000;
  /// An instance silent this long (at least twice the lease) is gone: not waited for by a
  /// resume, shown as not live, and may be forgotten.
  int64_t instance_timeout_ms = 30000;
  /// A secret shared by the fleet's instances: records are signed with it, and records not
  /// signed with it are ignored. Empty: records are neither signed nor checked.
  std::string key_file;
};

/// How fast the spool drains (ingest/drain_governor.h): it follows the database — commit
/// latency, and the replicas' lag when mariadb.replicas are configured.
struct DrainConfig {
  /// Events per second at most; 0: no cap.
  int64_t max_rate = 0;
  /// Above this lag of any replica behind Sluice's commits the drain slows down; 0: replica
  /// lag is not followed.
  int64_t max_replica_lag_s = 30;
};

/// `sluice replay`.
struct ReplayConfig {
  /// A replay of more events than this is refused without --confirm (after printing what it
  /// would do). 0: every replay needs --confirm.
  int64_t confirm_above_events = 1'000'000;
};

struct Config {
  std::string source_path;  ///< the file this was loaded from
  KafkaConfig kafka;
  MariaDbConfig mariadb;
  /// mariadb.replicas: read-only endpoints whose freshness status shows beside the primary's
  /// (host, port, socket, user, password_file, database, tls — the primary's database and tls
  /// by default).
  std::vector<MariaDbConfig> replicas;
  BatchConfig batch;
  SpoolConfig spool;
  std::string schemas_path = "schemas";
  SchemaRepositoryConfig schema_repository;
  AdminConfig admin;
  LogConfig log;
  FleetConfig fleet;
  DrainConfig drain;
  ReplayConfig replay;
};

/// Loads and validates a config file. The error message has the form
/// "FILE:LINE: KEY: what is wrong" (or "FILE: ..." when no line applies).
Result<Config> load_config(const std::string& path);
/// As load_config, from YAML text; `path` names the file in messages and is the base of
/// relative paths. For tests and the fuzz target.
Result<Config> parse_config(const std::string& yaml, const std::string& path);

/// What a reload (SIGHUP) would change in a running service.
struct ConfigChanges {
  /// mariadb host, port, socket, user or password: applied while paused (the failover case).
  bool mariadb_endpoint = false;
  bool log_level = false;  ///< applied at once
  /// Dotted keys that changed and need a restart; a reload leaves them as they run.
  std::vector<std::string> need_restart;
};
ConfigChanges diff_config(const Config& running, const Config& loaded);

/// The fleet's control topic of a consumer group: "_sluice_fleet.<group_id>", with characters
/// Kafka does not allow in topic names replaced by '_'.
std::string default_fleet_topic(const std::string& group_id);

/// The host name, as a static group member name (characters outside [A-Za-z0-9._-] become '_').
std::string default_instance_id();

/// "host:port" or the socket path, and the user: how logs and status name a MariaDB endpoint.
std::string describe_endpoint(const MariaDbConfig& mariadb);

/// True when `listen` ("host:port", "[v6]:port") names a loopback address (127.0.0.0/8, ::1,
/// localhost). Anything else, including a wildcard or a name, is not loopback.
bool is_loopback_listen(const std::string& listen);

}  // namespace sluice
