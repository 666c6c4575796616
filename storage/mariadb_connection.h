#pragma once
/// One MariaDB Connector/C session: connect, run statements, stream a LOAD DATA LOCAL from
/// memory. Errors come back as `DbStatus` values, never exceptions.
/// Thread safety: one thread at a time (the owning writer or control thread).

#include <mysql.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "storage/db_error.h"

namespace sluice::storage {

class MariaDbConnection {
 public:
  ~MariaDbConnection();
  MariaDbConnection(const MariaDbConnection&) = delete;
  MariaDbConnection& operator=(const MariaDbConnection&) = delete;

  /// Opens a session identified to the server as program_name=sluice, in UTC, strict SQL mode,
  /// READ COMMITTED, with "found rows" semantics for UPDATE.
  static DbStatus open(const MariaDbConfig& config, std::unique_ptr<MariaDbConnection>& out);

  /// Runs a statement and discards any result set.
  DbStatus exec(std::string_view sql);
  /// Runs a query and returns its rows as strings (NULL as nullopt).
  DbStatus query(std::string_view sql, std::vector<std::vector<std::optional<std::string>>>& rows);
  /// Rows matched (not merely changed) by the last UPDATE, or inserted by the last exec or
  /// load_data.
  uint64_t affected_rows() const;
  /// Warnings of the last exec or load_data.
  unsigned int warning_count() const;
  /// Runs `sql`, a LOAD DATA LOCAL INFILE statement naming `file_name`, serving `data` from
  /// memory. A request from the server for any other name, or outside this call (the server
  /// may ask on any statement), is refused: no file is ever read.
  DbStatus load_data(std::string_view sql, std::string_view file_name, std::string_view data);
  /// Shuts the connection down under a statement running on another thread (mariadb_cancel):
  /// it fails, and the server rolls its transaction back. Safe from any thread.
  void cancel();
  /// Escapes bytes for use inside a single-quoted SQL literal, appending to out.
  void append_escaped(std::string& out, std::string_view bytes) const;

  /// State of the in-memory LOAD DATA source (the connector's callbacks, mariadb_connection.cc).
  struct Infile {
    bool armed = false;     ///< a load_data() call is waiting for its request
    std::string_view name;  ///< the only file name it answers to
    std::string_view data;
    size_t pos = 0;
    std::string refused;  ///< the name of the last refused request, for the error message
  };

 private:
  explicit MariaDbConnection(MYSQL* mysql) : mysql_(mysql) {}
  DbStatus last_error() const;

  MYSQL* mysql_;
  Infile infile_;
  uint64_t affected_rows_ = 0;
  unsigned int warning_count_ = 0;
};

}  // namespace sluice::storage
