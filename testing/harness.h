#pragma once
/// Test support for integration tests: real processes (sluice, sluice-testbroker, a private
/// mariadbd through scripts/dev-mariadb), a librdkafka producer, SQL as root, and an event
/// factory whose uuids encode (topic index, partition, sequence) so that order and
/// exactly-once can be checked from the stored rows alone. Not used by production code.

#include <librdkafka/rdkafka.h>
#include <mysql.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::testing {

/// Paths of the build and source trees (from CTest's environment, or defaults).
std::string binary_dir();
std::string source_dir();

/// A fresh folder under /tmp, removed on destruction unless SLUICE_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// A child process with stdout and stderr sent to a log file.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::string& log_file);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  /// Waits for exit; returns the exit code (128+signal when killed), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// The child's resource usage (peak RSS, CPU time), once it has exited.
  const std::optional<struct rusage>& usage() const { return usage_; }
  const std::string& log_file() const { return log_file_; }
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::optional<struct rusage> usage_;
  std::string log_file_;
};

/// Runs a command to completion, returning its exit code and output (stdout and stderr).
int run_command(const std::vector<std::string>& argv, std::string& output);

/// Sends raw bytes to 127.0.0.1:`port` and returns whatever comes back before the server
/// closes or 2 s pass ("<connect failed>" when nothing listens). With `half_close`, the sending
/// side is shut down after the bytes, as a client that has nothing more to say.
std::string raw_exchange(int port, const std::string& bytes, bool half_close = true);

/// A simulation's history, as one number: FNV-1a over the lines added (the operations and the
/// state after each), so a seed run twice can be compared — and printed — in one word.
class HistoryHash {
 public:
  void add(std::string_view line) {
    for (const char c : line) value_ = (value_ ^ static_cast<unsigned char>(c)) * kPrime;
    value_ = (value_ ^ '\n') * kPrime;
  }
  uint64_t value() const { return value_; }

 private:
  static constexpr uint64_t kPrime = 0x100000001b3ull;
  uint64_t value_ = 0xcbf29ce484222325ull;
};

/// The seeds a model test runs: those `seeds_env` lists (comma-separated: replaying a
/// failure), else — with `first_env` set — a sweep of `runs_env` seeds from it on, else
/// 1..`fixed` (the same every run) and as many random ones as `runs_env` says (default
/// `default_runs`).
std::vector<uint64_t> model_seeds(const char* seeds_env, const char* runs_env, uint64_t fixed,
                                  int default_runs, const char* first_env = nullptr);

/// A TCP port free now on the loopback (127.0.0.1, or ::1 with `ipv6`), for a config that must
/// name one; -1 when none can be had (no IPv6 loopback).
int free_tcp_port(bool ipv6 = false);

/// A process's resident memory (VmRSS) in KiB, or -1.
int64_t rss_kib(pid_t pid);

/// A small filesystem of the test's own (tmpfs; needs root, as the tests run in CI) at `path`,
/// unmounted at the end: a disk that fills up.
class SmallDisk {
 public:
  SmallDisk(std::string path, const std::string& size);
  ~SmallDisk();
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  bool mounted() const { return mounted_; }
  /// Space returns: the filesystem grows.
  bool grow(const std::string& size);

 private:
  std::string path_;
  bool mounted_ = false;
};

/// Polls `condition` every 50 ms until true or `timeout`; returns its last value.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// A private MariaDB server (scripts/dev-mariadb) in its own folder.
class MariaDb {
 public:
  /// `extra_options` are mariadbd options (e.g. "--log-bin --server-id=1" for a primary).
  explicit MariaDb(const std::string& dir, std::string extra_options = "");
  ~MariaDb();
  void start();
  void stop();
  void kill9();
  const std::string& socket() const { return socket_; }
  int port() const { return port_; }
  std::string password_file() const { return dir_ + "/sluice.password"; }
  /// The password of user sluice (the first line of password_file()).
  std::string password() const;

  /// Runs SQL as root in database `log`; throws std::runtime_error on failure.
  void exec(const std::string& sql);
  /// Grants (or revokes) `privilege` on the log database to the sluice account, from either
  /// host it connects from.
  void set_sluice_grant(const std::string& privilege, bool granted);
  std::vector<std::vector<std::optional<std::string>>> query(const std::string& sql);
  /// The first column of the first row as an integer (0 when NULL or no row).
  int64_t scalar(const std::string& sql);
  /// Rows in a table of database `log`; 0 while it does not exist yet (or the server cannot
  /// answer).
  int64_t table_rows(const std::string& table);
  /// mariadb-dump of database `log` into `file` (a backup).
  void dump(const std::string& file);
  /// Loads a dump into database `log` (a restore).
  void load(const std::string& file);

 private:
  MYSQL* connection();
  std::string dir_;
  std::string extra_options_;
  std::string socket_;
  int port_ = 0;
  MYSQL* conn_ = nullptr;
};

/// A sluice-testbroker process.
class Broker {
 public:
  Broker(const std::vector<std::string>& topics, const std::string& dir);
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  std::unique_ptr<Process> process_;
  std::string bootstrap_;
};

/// A librdkafka producer that waits for every delivery and records each message's offset.
class Producer {
 public:
  explicit Producer(const std::string& bootstrap, const std::string& compression = "none",
                    bool idempotent = false);
  ~Producer();
  /// Produces to an explicit partition; returns nothing until flush(). `timestamp_ms` is the
  /// message's Kafka timestamp (0: now); `key` the record's key, if any.
  void produce(const std::string& topic, int32_t partition, const std::string& payload,
               int64_t timestamp_ms = 0, const std::optional<std::string>& key = std::nullopt);
  /// Waits for all deliveries; throws on any delivery failure.
  void flush();
  /// Offsets of delivered messages, in production order per (topic, partition).
  const std::map<std::pair<std::string, int32_t>, std::vector<int64_t>>& offsets() const {
    return offsets_;
  }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  rd_kafka_t* rk_ = nullptr;
  std::map<std::pair<std::string, int32_t>, std::vector<int64_t>> offsets_;
  std::vector<std::string> errors_;
  size_t outstanding_ = 0;
};

/// Builds capsules. uuid = 8 hex topic index, 8 hex partition, 16 hex sequence.
struct EventFactory {
  static std::string uuid_for(uint32_t topic_index, uint32_t partition, uint64_t seq);
  /// Decodes a uuid built by uuid_for.
  static void parse_uuid(const std::string& uuid, uint32_t& topic_index, uint32_t& partition,
                         uint64_t& seq);
  /// What is wrong with `rows` (the uuid in the first column, in the order written) against
  /// partitions 0..partitions-1 (0: those the rows name) each holding sequences
  /// 0..per_partition-1 once and in order: the first fault found, "" when none.
  static std::string exact_fault(const std::vector<std::vector<std::optional<std::string>>>& rows,
                                 uint32_t partitions, uint64_t per_partition);
  /// A valid event of schema `which` (0 NavigationTiming, 1 SaveTiming, 2 EditConflict,
  /// 3 TestSchema), with fields varying by seq (optional fields present or not, unicode).
  static std::string good(int which, uint32_t topic_index, uint32_t partition, uint64_t seq);
  /// good(3, ...) under another schema name and revision: TestSchema's document served under
  /// that name (a schema repository's tests: test_schema_document()).
  static std::string renamed(const std::string& schema, int64_t revision, uint32_t topic_index,
                             uint32_t partition, uint64_t seq);
  /// The text of schemas/TestSchema/1.json.
  static std::string test_schema_document();

  /// Event Platform: the schema title of platform_event, and the table its major 1 goes to.
  static constexpr const char* kPlatformTitle = "/test/click";
  static constexpr const char* kPlatformTable = "test_click_1";
  /// How a version of kPlatformTitle differs from 1.0.0 (`action` string, required; `count`
  /// integer; the meta fields and `dt`).
  enum class PlatformVersion {
    k1_0,      ///< 1.0.0
    k1_1,      ///< 1.1.0: adds `session.id` (string) and `ratio` (number)
    kRetyped,  ///< 1.2.0: `count` becomes a string
    kRemoved,  ///< 1.2.0: `count` is gone
  };
  static std::string platform_schema_document(PlatformVersion version);
  /// Where platform_schema_document(version) goes under a schemas folder or repository.
  static std::string platform_schema_file(PlatformVersion version);
  /// An event of that version: meta.id is uuid_for(...) as a UUID (with dashes), the fields of
  /// the version present (1.1.0's when `version` is k1_1; kRetyped's `count` a string).
  static std::string platform_event(PlatformVersion version, uint32_t topic_index,
                                    uint32_t partition, uint64_t seq);
  /// A document or event of kPlatformTitle under another title ("/fleet/click"): one that is
  /// not among the shipped schemas, for tests that need it fetched from a repository.
  static std::string retitled(std::string text, const std::string& title);
  /// A production-shaped NavigationTiming capsule for benchmarks: about 30 of the schema's 36
  /// fields (which ones vary with seq), unicode strings, a `dt`, and a parsed `userAgent`
  /// object in a third of the events. About 1 KB of JSON.
  static std::string navigation_timing(uint32_t topic_index, uint32_t partition, uint64_t seq);
  /// Table name of schema `which`.
  static std::string table(int which);
  /// A bad event of class `which` (0..kBadClasses-1) and the dead-letter reason prefix it must
  /// produce.
  static constexpr int kBadClasses = 8;
  static std::string bad(int which, uint64_t seq, std::string& expected_reason_prefix);
};

/// What a test adds to the generated config.
struct ConfigOptions {
  std::string extra_yaml{};                               ///< top-level sections (e.g. batch)
  std::map<std::string, std::string> kafka_properties{};  ///< kafka.properties
  std::string mariadb_lines{};                            ///< more keys of `mariadb:`, indented
  std::string admin_lines{};                              ///< more keys of `admin:`, indented
  std::string spool_lines{};                              ///< more keys of `spool:`, indented
  std::string schemas_lines{};                            ///< more keys of `schemas:`, indented
  std::string database = "log";                           ///< mariadb.database
  std::string instance_id{};                              ///< kafka.instance_id (default: host)
  /// Connect over TCP to 127.0.0.1:port instead of the server's socket (TLS needs TCP).
  bool tcp = false;
  /// Connect over TCP to 127.0.0.1 at this port instead (a TcpProxy in front of the server).
  int port = 0;
};

/// mariadbd options of a primary with a (row-based) binary log, and of a replica of it.
inline constexpr const char* kPrimaryOptions = "--log-bin=binlog --server-id=1 --binlog-format=ROW";
inline constexpr const char* kReplicaOptions = "--server-id=2 --relay-log=relay --read-only=0";
/// Makes `replica` replicate `primary` from the primary's current binary log position: real
/// replication between two private servers started with the options above. Throws on failure.
void start_replication(MariaDb& primary, MariaDb& replica);
/// A `mariadb.replicas` list (for ConfigOptions::mariadb_lines) naming `replica` by its socket,
/// as user sluice; more entries may be appended.
std::string replicas_lines(const MariaDb& replica);

/// Writes a sluice config (`dir`/sluice.yaml) for the given servers and returns its path. The admin
/// endpoint listens on 127.0.0.1:0 (a free port; see admin_url).
std::string write_config(const TempDir& dir, const std::string& bootstrap, const MariaDb& db,
                         const std::vector<std::string>& topics, const std::string& group,
                         const ConfigOptions& options = {});

/// The admin endpoint's URL, read from the service's log once it is listening ("" if not yet).
std::string admin_url(const Process& sluice);

/// Starts `sluice run --config FILE` with its log in the temp dir.
std::unique_ptr<Process> start_sluice(const TempDir& dir, const std::string& config,
                                      const std::string& log_name = "sluice.log");

}  // namespace sluice::testing
