#pragma once
/// What the pipeline shows of itself: counters (atomics, read from any thread) and a status
/// snapshot (republished by the ingest thread at most every quarter second, copied out under a
/// lock). The admin endpoint and the metrics read only these.

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ingest/service_state.h"
#include "ingest/writer_state.h"
#include "storage/spool.h"

namespace sluice::ingest {

/// Counters the pipeline keeps; read from any thread.
struct PipelineStats {
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> rows_inserted{0};
  std::atomic<uint64_t> dead_letters{0};
  std::atomic<uint64_t> batches_committed{0};
  std::atomic<uint64_t> batches_already_applied{0};
  std::atomic<uint64_t> expired_offsets{0};  ///< offsets lost from Kafka before consumption
  std::atomic<uint64_t> spooled{0};
  std::atomic<uint64_t> drained{0};
  std::atomic<uint64_t> refilled{0};  ///< read again from Kafka because MariaDB lagged behind
  /// Messages below anything their partition fetched from: a log rewound (a recreated topic).
  std::atomic<uint64_t> rewound_messages{0};
  /// Spool writes (synced commits) that failed: a full disk, an I/O error.
  std::atomic<uint64_t> spool_write_errors{0};
};

/// A consistent picture of the pipeline for the admin endpoint. Built by `Pipeline::status`.
struct PipelineStatus {
  struct Partition {
    std::string topic;
    int32_t partition = 0;
    /// direct | refill | draining | waiting | halted | spooling | orphan (partition_cursor.h)
    std::string mode;
    int64_t position = -1;         ///< next offset the pipeline will read from Kafka
    int64_t committed = -1;        ///< next offset MariaDB has (sluice_offsets), -1 unknown
    int64_t kafka_committed = -1;  ///< last offset the consumer group acknowledged
    int64_t high_watermark = -1;   ///< Kafka's log end as last fetched, -1 unknown
    int64_t lag = -1;              ///< high_watermark - position, -1 unknown
    /// While waiting: offsets [from, to) expired from Kafka that another spool may hold.
    int64_t waiting_from = -1, waiting_to = -1;
    /// Why its spooled events cannot be read (a corrupt block): its drain stops there.
    std::string spool_error;
    int64_t log_start = -1;  ///< Kafka's log start as last fetched, -1 unknown
    /// While held: the schema revision its next event needs, still being fetched.
    std::string waits_for_schema;
  };
  struct Gap {
    std::string topic;
    int32_t partition = 0;
    int64_t from = 0, to = 0;  ///< offsets [from, to) expired from Kafka unread
    int64_t lost = 0;
    int64_t detected_at_ms = 0;
  };
  /// What the spool holds for one partition (GET /v1/spool, `sluice spool inspect`).
  struct SpoolPartition {
    std::string topic;
    int32_t partition = 0;
    storage::SpoolPartition range;
    int64_t newest_timestamp_ms = -1;  ///< of the last event; -1 when not known
  };
  struct Table {
    std::string table;
    uint64_t rows_inserted = 0;  ///< since start
    int64_t max_timestamp = -1;  ///< newest inserted `timestamp`, epoch seconds
  };
  ServiceState state = ServiceState::kStarting;
  std::string pause_reason;     ///< when paused
  bool pause_local = false;     ///< paused on this host alone, not yet adopted by the fleet
  std::string mariadb_server;   ///< @@server_uid of the server last reached ("" unknown)
  int64_t paused_since_ms = 0;  ///< when paused
  std::string outage_error;     ///< when in outage: the latest error
  int64_t outage_since_ms = 0;  ///< when in outage
  std::string mariadb;          ///< the endpoint written to (describe_endpoint)
  /// What in the server's settings holds Sluice back, and what to change (logged once).
  std::vector<std::string> mariadb_notes;
  uint64_t spool_events = 0;
  uint64_t spool_bytes = 0;
  double spool_oldest_age_s = 0;
  bool spool_full = false;  ///< fetching paused: the spool reached spool.max_bytes
  /// While the spool cannot write (its disk full, an I/O error): the error; fetching for it
  /// is paused as for a full one. Empty otherwise.
  std::string spool_error;
  int64_t spool_error_since_ms = 0;
  bool fetch_paused = false;  ///< fetching paused: MariaDB is behind, or the spool is full
  uint64_t in_flight_bytes = 0;
  /// 1 once Sluice last reached MariaDB (a commit or a probe); false in an outage.
  bool db_up = false;
  /// No open transaction and no MariaDB connection: the gate is closed and the writers quiet.
  bool quiet = false;
  std::map<std::string, uint64_t> consumed_by_topic;  ///< events consumed since start
  std::vector<Partition> partitions;
  std::vector<Gap> gaps;  ///< the most recent, newest last
  std::vector<Table> tables;
  std::vector<SpoolPartition> spool_partitions;
  /// Per writer, in index order: whether it is failing, and why (Writer::state()).
  std::vector<WriterState> writers;
  /// Where schema revisions come from (schemas.*).
  struct Schemas {
    std::string path;        ///< schemas.path
    std::string repository;  ///< schemas.repository_url; "" for none
    std::string cache;       ///< schemas.cache_path (with a repository)
    uint64_t from_path = 0, from_cache = 0, fetched = 0;  ///< compiled this run, by origin
    uint64_t not_found = 0;       ///< definite answers of no such revision
    uint64_t fetch_failures = 0;  ///< fetches that got no answer
    uint64_t waiting = 0;         ///< revisions asked for, not answered yet
    bool reachable = true;        ///< the repository's last fetch got an answer
    std::string last_error;       ///< of the last failed fetch
  } schemas;
  /// How fast the spool drains (ingest/drain_governor.h).
  struct Drain {
    double rate_limit = 0;          ///< events per second; 0: not limited
    std::string limiting = "none";  ///< none | max_rate | commit_latency | replica_lag
    double events_per_s = 0;        ///< drained lately
    double eta_s = -1;              ///< to an empty spool at that rate; -1 unknown
    double replica_lag_s = -1;      ///< worst replica behind Sluice's commits; -1 unknown
  } drain;
};

}  // namespace sluice::ingest
