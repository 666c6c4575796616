#pragma once
/// Database errors as values, classified once, here. The pipeline reacts to the class, never to
/// raw error numbers.

#include <string>

namespace sluice::storage {

enum class DbErrorClass {
  kTransient,  ///< deadlock, lock wait timeout: retry the transaction soon
  kOutage,     ///< connection lost or refused, server gone or shutting down, too many connections
  kReadOnly,   ///< the server refuses writes (read_only, super_read_only)
  kBadRow,     ///< a row's content was refused (should not happen: rows are validated first)
  kFatal,      ///< configuration or privilege problems: retrying will not help by itself
};

/// Classifies a MariaDB server or client error number.
DbErrorClass classify_db_error(unsigned int code);

const char* to_string(DbErrorClass c);

struct [[nodiscard]] DbStatus {
  unsigned int code = 0;  ///< 0 when ok
  std::string message;

  bool is_ok() const { return code == 0; }
  DbErrorClass error_class() const { return classify_db_error(code); }
  std::string describe() const;
  void ignore() const {}
};

}  // namespace sluice::storage
