#include "storage/db_error.h"

#include <errmsg.h>
#include <mysqld_error.h>

#include "common/enum_names.h"

namespace sluice::storage {

DbErrorClass classify_db_error(unsigned int code) {
  switch (code) {
    case ER_LOCK_DEADLOCK:      // 1213
    case ER_LOCK_WAIT_TIMEOUT:  // 1205
    case ER_CHECKREAD:          // 1020: record changed since last read
    case ER_QUERY_INTERRUPTED:  // 1317
    case ER_STATEMENT_TIMEOUT:  // 1969: max_statement_time
    case kDuplicatePrimaryKey:  // an auto-increment id taken twice; split if it repeats
    case kFenced:               // the write lease ran out: written again once renewed
      return DbErrorClass::kTransient;
    case CR_CONNECTION_ERROR:            // 2002
    case CR_CONN_HOST_ERROR:             // 2003
    case CR_UNKNOWN_HOST:                // 2005
    case CR_SERVER_GONE_ERROR:           // 2006
    case CR_SERVER_LOST:                 // 2013
    case CR_COMMANDS_OUT_OF_SYNC:        // 2014: the connection is unusable after a failed read
    case CR_SERVER_LOST_EXTENDED:        // 2055
    case ER_CON_COUNT_ERROR:             // 1040: too many connections
    case ER_TOO_MANY_USER_CONNECTIONS:   // 1203
    case ER_SERVER_SHUTDOWN:             // 1053
    case ER_CONNECTION_KILLED:           // 1927
    case ER_NORMAL_SHUTDOWN:             // 1077
    case ER_NET_READ_ERROR:              // 1158
    case ER_NET_READ_INTERRUPTED:        // 1159
    case ER_NET_ERROR_ON_WRITE:          // 1160
    case ER_NET_WRITE_INTERRUPTED:       // 1161
    case ER_ABORTING_CONNECTION:         // 1152
    case ER_NEW_ABORTING_CONNECTION:     // 1184
    case ER_LOCK_OR_ACTIVE_TRANSACTION:  // 1192
    case ER_OUT_OF_RESOURCES:            // 1041
    case ER_DISK_FULL:                   // 1021
    case kWrongServer:                   // not the fleet's server: nothing written there
      return DbErrorClass::kOutage;
    case ER_OPTION_PREVENTS_STATEMENT:              // 1290: --read-only
    case ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION:  // 1792
    case ER_READ_ONLY_MODE:                         // 1836
      return DbErrorClass::kReadOnly;
    case ER_DATA_TOO_LONG:                    // 1406
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:  // 1366
    case ER_TRUNCATED_WRONG_VALUE:            // 1292
    case ER_WARN_DATA_OUT_OF_RANGE:           // 1264
    case ER_DATA_OUT_OF_RANGE:                // 1690
    case WARN_DATA_TRUNCATED:                 // 1265
    case ER_BAD_NULL_ERROR:                   // 1048
    case ER_WARN_NULL_TO_NOTNULL:             // 1263
    case ER_INVALID_CHARACTER_STRING:         // 1300
    case ER_WRONG_VALUE_FOR_TYPE:             // 1411
    case ER_DUP_ENTRY:                        // 1062: a unique key other than the uuid's
    case ER_NO_REFERENCED_ROW_2:              // 1452: a foreign key a DBA added
    case ER_CONSTRAINT_FAILED:                // 4025: a CHECK constraint
    case ER_SIGNAL_EXCEPTION:                 // 1644: a trigger refused the row
    // The table's layout: a column missing or not fillable, a table that cannot be created.
    case ER_BAD_FIELD_ERROR:           // 1054
    case ER_NO_DEFAULT_FOR_FIELD:      // 1364
    case ER_WRONG_VALUE_COUNT_ON_ROW:  // 1136
    case ER_WARN_TOO_FEW_RECORDS:      // 1261
    case ER_WARN_TOO_MANY_RECORDS:     // 1262
    case ER_TOO_BIG_ROWSIZE:           // 1118
    case ER_TOO_MANY_FIELDS:           // 1117
    case ER_WRONG_COLUMN_NAME:         // 1166
    case ER_TOO_LONG_IDENT:            // 1059
    case ER_DUP_FIELDNAME:             // 1060
      return DbErrorClass::kBadRow;
    default:
      return DbErrorClass::kFatal;
  }
}

const char* to_string(DbErrorClass c) {
  static constexpr EnumNames<DbErrorClass, DbErrorClass::kFatal, 5> kNames{
      {"transient", "outage", "read_only", "bad_row", "fatal"}};
  return kNames(c, "fatal");
}

bool is_access_denied(unsigned int code) {
  switch (code) {
    case ER_DBACCESS_DENIED_ERROR:            // 1044
    case ER_ACCESS_DENIED_ERROR:              // 1045
    case ER_TABLEACCESS_DENIED_ERROR:         // 1142
    case ER_COLUMNACCESS_DENIED_ERROR:        // 1143
    case ER_SPECIFIC_ACCESS_DENIED_ERROR:     // 1227
    case ER_PROCACCESS_DENIED_ERROR:          // 1370
    case ER_ACCESS_DENIED_NO_PASSWORD_ERROR:  // 1698
      return true;
    default:
      return false;
  }
}

bool reconnect_after(unsigned int code) {
  switch (classify_db_error(code)) {
    case DbErrorClass::kOutage:
    case DbErrorClass::kReadOnly:
      return true;
    case DbErrorClass::kTransient:
    case DbErrorClass::kBadRow:
      return false;
    case DbErrorClass::kFatal:
      return is_access_denied(code);
  }
  return true;
}

bool repeated_means_bad_batch(unsigned int code) {
  return code == ER_STATEMENT_TIMEOUT || code == kDuplicatePrimaryKey;
}

std::string DbStatus::describe() const {
  if (code == kFenced) return "not committed: " + message;
  if (code == kWrongServer) return "not the fleet's server: " + message;
  if (code == kNoUuidKey) return "refused: " + message;
  const unsigned int server_code = code == kDuplicatePrimaryKey ? ER_DUP_ENTRY : code;
  return "MariaDB error " + std::to_string(server_code) + " (" + to_string(error_class()) +
         "): " + message;
}

}  // namespace sluice::storage
