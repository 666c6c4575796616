#include "storage/mariadb_connection.h"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <cstring>

namespace sluice::storage {
namespace {

// LOAD DATA LOCAL callbacks, installed for the connection's whole life (never the connector's
// default, which opens the file the server names). A server may ask for a file in answer to
// any statement — a rogue server, or a man in the middle — so a request is served only while
// load_data() runs, and only for the name its statement gave; then from memory. Nothing here
// ever opens a file.
int infile_init(void** ptr, const char* filename, void* userdata) {
  *ptr = userdata;
  auto* in = static_cast<MariaDbConnection::Infile*>(userdata);
  if (!in->armed || filename == nullptr || std::string_view(filename) != in->name) {
    in->refused = filename != nullptr ? std::string(filename).substr(0, 200) : "";
    return 1;
  }
  in->armed = false;  // one file per statement
  in->pos = 0;
  return 0;
}
int infile_read(void* ptr, char* buf, unsigned int len) {
  auto* in = static_cast<MariaDbConnection::Infile*>(ptr);
  const size_t n = std::min<size_t>(len, in->data.size() - in->pos);
  std::memcpy(buf, in->data.data() + in->pos, n);
  in->pos += n;
  return static_cast<int>(n);
}
void infile_end(void* /*ptr*/) {}
int infile_error(void* ptr, char* msg, unsigned int len) {
  const auto* in = static_cast<MariaDbConnection::Infile*>(ptr);
  std::snprintf(msg, len,
                "refused the server's request for local file '%s': Sluice sends only its own "
                "in-memory batch, and only for its own LOAD DATA statement",
                in->refused.c_str());
  return CR_UNKNOWN_ERROR;
}

}  // namespace

MariaDbConnection::~MariaDbConnection() { mysql_close(mysql_); }

void MariaDbConnection::cancel() { (void)mariadb_cancel(mysql_); }

DbStatus MariaDbConnection::open(const MariaDbConfig& c, std::unique_ptr<MariaDbConnection>& out) {
  MYSQL* m = mysql_init(nullptr);
  if (m == nullptr) return {CR_OUT_OF_MEMORY, "mysql_init failed"};
  const unsigned int connect_timeout = std::max(1, c.connect_timeout_ms / 1000);
  const unsigned int io_timeout = std::max(1, c.io_timeout_ms / 1000);
  const unsigned int local_infile = 1;
  const my_bool no = 0;
  mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
  mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
  mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
  mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &local_infile);
  mysql_optionsv(m, MYSQL_OPT_RECONNECT, &no);
  mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "sluice");
  if (c.tls.enabled) {
    // Enforce: no fallback to plaintext when the server offers no TLS. The files are read by
    // the connector at each connect, so renewed certificates apply to the next session.
    const my_bool yes = 1;
    const my_bool verify = c.tls.verify_server_cert ? 1 : 0;
    mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &yes);
    mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    if (!c.tls.ca_file.empty()) mysql_optionsv(m, MYSQL_OPT_SSL_CA, c.tls.ca_file.c_str());
    if (!c.tls.cert_file.empty()) mysql_optionsv(m, MYSQL_OPT_SSL_CERT, c.tls.cert_file.c_str());
    if (!c.tls.key_file.empty()) mysql_optionsv(m, MYSQL_OPT_SSL_KEY, c.tls.key_file.c_str());
  }
  const char* socket = c.socket.empty() ? nullptr : c.socket.c_str();
  const char* host = c.socket.empty() ? c.host.c_str() : "localhost";
  std::unique_ptr<MariaDbConnection> conn(new MariaDbConnection(m));
  // The object lives on the heap, so the address handed to the connector stays valid.
  mysql_set_local_infile_handler(m, infile_init, infile_read, infile_end, infile_error,
                                 &conn->infile_);
  if (mysql_real_connect(m, host, c.user.c_str(), c.password.c_str(), c.database.c_str(),
                         static_cast<unsigned int>(c.port), socket, CLIENT_FOUND_ROWS) == nullptr) {
    auto st = conn->last_error();
    unsigned long server_caps = 0;
    if (st.code == ER_ACCESS_DENIED_ERROR && !c.tls.enabled && c.socket.empty() &&
        mariadb_get_infov(m, MARIADB_CONNECTION_SERVER_CAPABILITIES, &server_caps) == 0 &&
        (server_caps & CLIENT_SSL) != 0) {
      // MariaDB refuses a plaintext session under require_secure_transport=ON with this same
      // "access denied", so say what else it may mean.
      st.message +=
          "; this session was not encrypted and the server offers TLS: if it sets "
          "require_secure_transport, configure mariadb.tls";
    } else if (st.code == CR_SSL_CONNECTION_ERROR) {
      st.message +=
          " (mariadb.tls: check ca_file, cert_file, key_file and that the server's "
          "certificate names '" +
          c.host + "')";
    }
    return st;
  }
  // A batch transaction is bounded in size by batch.max_rows/max_bytes and in time here: no
  // statement runs longer than the I/O timeout and no lock wait exceeds 10 s, so Sluice never
  // holds a transaction long enough to trip a long-running-transaction alarm. Both failures
  // are retried as transient errors. The statement limit is half a second under the read
  // timeout, so a slow statement ends with the server's clean error (1969), which the writer
  // can act on, rather than with a lost connection.
  //
  // A wait for a table's metadata lock (an ALTER TABLE, a LOCK TABLES, a backup) is the
  // environment's doing, never an event's: it ends at lock_wait_timeout, well before the
  // statement limit, with a lock wait timeout (1205) — retried with backoff like a row lock
  // wait — rather than a statement timeout, which would split the batch to find a slow row.
  const double statement_time = std::max(0.5, static_cast<double>(io_timeout) - 0.5);
  const int lock_wait = std::clamp(static_cast<int>(statement_time / 2), 0, 10);
  auto st = conn->exec(
      "SET SESSION time_zone = '+00:00', "
      "sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO', "
      "max_error_count = 65535, "
      "max_statement_time = " +
      std::to_string(statement_time) +
      ", innodb_lock_wait_timeout = 10, lock_wait_timeout = " + std::to_string(lock_wait) +
      ", tx_isolation = 'READ-COMMITTED', autocommit = 1");
  if (!st.is_ok()) return st;
  out = std::move(conn);
  return {};
}

DbStatus MariaDbConnection::last_error() const {
  const unsigned int code = mysql_errno(mysql_);
  return {code == 0 ? static_cast<unsigned int>(CR_UNKNOWN_ERROR) : code, mysql_error(mysql_)};
}

DbStatus MariaDbConnection::exec(std::string_view sql) {
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) return last_error();
  // Read the counters before anything else touches the connection's state.
  affected_rows_ = mysql_affected_rows(mysql_);
  warning_count_ = mysql_warning_count(mysql_);
  if (mysql_field_count(mysql_) > 0) {
    // A statement that returned rows anyway: drain them so the connection stays usable.
    if (MYSQL_RES* res = mysql_store_result(mysql_)) mysql_free_result(res);
  }
  if (mysql_errno(mysql_) != 0) return last_error();
  return {};
}

DbStatus MariaDbConnection::query(std::string_view sql,
                                  std::vector<std::vector<std::optional<std::string>>>& rows) {
  rows.clear();
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) return last_error();
  MYSQL_RES* res = mysql_store_result(mysql_);
  if (res == nullptr) return mysql_errno(mysql_) != 0 ? last_error() : DbStatus{};
  const unsigned int fields = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    const unsigned long* lengths = mysql_fetch_lengths(res);
    auto& out = rows.emplace_back();
    out.reserve(fields);
    for (unsigned int i = 0; i < fields; ++i) {
      if (row[i] == nullptr) {
        out.emplace_back(std::nullopt);
      } else {
        out.emplace_back(std::string(row[i], lengths[i]));
      }
    }
  }
  mysql_free_result(res);
  return {};
}

uint64_t MariaDbConnection::affected_rows() const { return affected_rows_; }

unsigned int MariaDbConnection::warning_count() const { return warning_count_; }

DbStatus MariaDbConnection::load_data(std::string_view sql, std::string_view file_name,
                                      std::string_view data) {
  infile_.armed = true;
  infile_.name = file_name;
  infile_.data = data;
  infile_.pos = 0;
  const bool failed = mysql_real_query(mysql_, sql.data(), sql.size()) != 0;
  infile_.armed = false;
  infile_.data = {};
  if (failed) return last_error();
  affected_rows_ = mysql_affected_rows(mysql_);
  warning_count_ = mysql_warning_count(mysql_);
  return {};
}

void MariaDbConnection::append_escaped(std::string& out, std::string_view bytes) const {
  const size_t old = out.size();
  out.resize(old + bytes.size() * 2 + 1);
  const unsigned long n =
      mysql_real_escape_string(mysql_, out.data() + old, bytes.data(), bytes.size());
  out.resize(old + n);
}

}  // namespace sluice::storage
