#pragma once
/// Database errors as values, classified once, here. The pipeline reacts to the class, never to
/// raw error numbers.

#include <string>

namespace sluice::storage {

enum class DbErrorClass {
  kTransient,  ///< deadlock, lock wait timeout: retry the transaction soon
  kOutage,     ///< connection lost or refused, server gone or shutting down, too many connections
  kReadOnly,   ///< the server refuses writes (read_only, super_read_only)
  /// The batch's content or the table's layout was refused: a value too long or out of range, a
  /// column missing or NOT NULL without a default, a constraint or a trigger. Retrying the same
  /// batch fails the same way: the writer splits it until the rows at fault are found and
  /// dead-letters them with the error.
  kBadRow,
  kFatal,  ///< configuration or privilege problems: retrying will not help by itself
};

/// Not a server or client code: Sluice's own, for a load that MariaDB answered with a duplicate
/// on the primary key (ER_DUP_ENTRY, key 'PRIMARY'). Sluice never sends the primary key — `id`
/// is AUTO_INCREMENT — so this is InnoDB handing an auto-increment id out twice under
/// concurrent writers (an IGNOREd duplicate uuid may give its id back while another session
/// holds the next ones): transient, the transaction is written again. It is also what a table
/// whose primary key is something else (uuid, from an older consumer) answers for a stored
/// uuid, every time: so it is retried only while it does not repeat (repeated_means_bad_batch),
/// then split down to the row at fault like a kBadRow. Shown as 1062 by describe().
inline constexpr unsigned int kDuplicatePrimaryKey = 100'062;

/// Not a server code: Sluice's own, for a transaction rolled back instead of committed because
/// this instance's write lease had run out (common/write_lease.h): it may not write until the
/// fleet is heard again. Not a failure of the database; the writer drops the batch.
inline constexpr unsigned int kFenced = 100'100;

/// Not a server code: Sluice's own, for a server that is not the one the fleet writes to (its
/// @@server_uid differs from the fleet's target): nothing is written there; probed again like
/// an outage, until the configuration names the fleet's server.
inline constexpr unsigned int kWrongServer = 100'200;

/// Not a server code: Sluice's own, for a table a replay would write to that has no UNIQUE key on
/// uuid alone: the replay's idempotence rests on it, so it refuses (fatal, naming the fix).
inline constexpr unsigned int kNoUuidKey = 100'300;

/// Classifies a MariaDB server or client error number.
DbErrorClass classify_db_error(unsigned int code);

const char* to_string(DbErrorClass c);

/// Whether the session must be closed after this error and a new one opened before the next
/// attempt: the connection is gone or unusable (outage), the server is read-only (a failover
/// may point the next connect elsewhere), or privileges were refused — MariaDB applies
/// database-level grants at the next connect, so a session that lost INSERT never gets it back.
bool reconnect_after(unsigned int code);

/// Whether an error is a refused privilege (ER_TABLEACCESS_DENIED_ERROR and its kin).
bool is_access_denied(unsigned int code);

/// Whether a transient error that keeps coming back for one batch means the batch itself is at
/// fault: a statement that always exceeds max_statement_time, a duplicate primary key
/// (kDuplicatePrimaryKey). The writer then splits it as it does a kBadRow batch.
bool repeated_means_bad_batch(unsigned int code);

struct [[nodiscard]] DbStatus {
  unsigned int code = 0;  ///< 0 when ok
  std::string message;

  bool is_ok() const { return code == 0; }
  DbErrorClass error_class() const { return classify_db_error(code); }
  std::string describe() const;
  void ignore() const {}
};

}  // namespace sluice::storage
