#include "common/config.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace sluice {
namespace {

namespace fs = std::filesystem;

/// Thrown inside the loader only; load_config turns it into a Status.
struct ConfigError {
  std::string message;
};

class Loader {
 public:
  explicit Loader(std::string file, const std::string* text = nullptr)
      : file_(std::move(file)), text_(text) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key,
                         const std::string& what) const {
    std::ostringstream out;
    out << file_;
    if (node.IsDefined() && node.Mark().line >= 0) out << ":" << node.Mark().line + 1;
    out << ": " << key << ": " << what;
    throw ConfigError{out.str()};
  }

  /// Rejects keys of `map` that are not in `known`, naming the first one and its line.
  void only_keys(const YAML::Node& map, const std::string& prefix,
                 const std::set<std::string>& known) const {
    if (!map.IsMap()) fail(map, prefix, "expected a mapping");
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const auto key = kv.first.as<std::string>();
      if (!seen.insert(key).second) {
        fail(kv.first, prefix.empty() ? key : prefix + "." + key,
             "duplicate key (it is already set above)");
      }
      if (!known.contains(key)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        fail(kv.first, prefix.empty() ? key : prefix + "." + key,
             "unknown key (known keys: " + list + ")");
      }
    }
  }

  std::string str(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(n, key, "expected a string");
    return n.Scalar();
  }

  int64_t integer(const YAML::Node& n, const std::string& key, int64_t min, int64_t max) const {
    if (!n.IsScalar()) fail(n, key, "expected an integer");
    int64_t v = 0;
    try {
      size_t used = 0;
      v = std::stoll(n.Scalar(), &used);
      if (used != n.Scalar().size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail(n, key, "expected an integer, got '" + n.Scalar() + "'");
    }
    if (v < min || v > max) {
      if (v < 0 && min >= 0) fail(n, key, "must not be negative, got " + n.Scalar());
      fail(
          n, key,
          "out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]: " + n.Scalar());
    }
    return v;
  }

  /// Refuses librdkafka properties that would break what Sluice promises.
  void check_kafka_property(const YAML::Node& n, const std::string& key, const std::string& name,
                            const std::string& value) const {
    static const std::map<std::string, std::string> managed = {
        {"bootstrap.servers", "set kafka.brokers instead"},
        {"group.id", "set kafka.group_id instead"},
        {"group.instance.id", "set kafka.instance_id instead"},
        {"enable.auto.commit",
         "Sluice commits an offset only once MariaDB holds the event (invariant 1)"},
        {"enable.auto.offset.store",
         "Sluice commits an offset only once MariaDB holds the event (invariant 1)"},
        {"enable.partition.eof", "Sluice needs no end-of-partition events"},
    };
    if (const auto it = managed.find(name); it != managed.end()) {
      fail(n, key, "managed by Sluice: " + it->second);
    }
    if (name == "auto.offset.reset" && value != "earliest" && value != "smallest" &&
        value != "beginning") {
      fail(n, key,
           "only 'earliest' is allowed: with '" + value +
               "' a partition without a committed offset would skip events silently (Sluice "
               "reports offsets that expired from Kafka as a gap instead)");
    }
  }

  /// Why `listen` is not an address the admin endpoint can bind ("" when it is): an IP
  /// literal (IPv6 in brackets) and a port 0-65535 (0: any free port).
  static std::string bad_listen(const std::string& listen) {
    std::string host, port;
    if (listen.starts_with("[")) {
      const auto close = listen.find(']');
      if (close == std::string::npos || listen.compare(close + 1, 1, ":") != 0) {
        return "expected [IPv6]:PORT, got '" + listen + "'";
      }
      host = listen.substr(1, close - 1);
      port = listen.substr(close + 2);
      in6_addr v6{};
      if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
        return "'" + host + "' is not an IPv6 address";
      }
    } else {
      const auto colon = listen.rfind(':');
      if (colon == std::string::npos) return "expected HOST:PORT, got '" + listen + "'";
      host = listen.substr(0, colon);
      port = listen.substr(colon + 1);
      in_addr v4{};
      if (host.find(':') != std::string::npos) {
        return "an IPv6 address goes in brackets, e.g. [::1]:8470";
      }
      if (inet_pton(AF_INET, host.c_str(), &v4) != 1) {
        return "'" + host +
               "' is not an IP address: the endpoint binds an address, not a name (e.g. "
               "127.0.0.1:8470 or [::1]:8470)";
      }
    }
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
      return "the port must be 0-65535, got '" + port + "'";
    }
    return "";
  }

  static bool valid_member_name(const std::string& s) {
    if (s.empty() || s.size() > 200) return false;
    return std::all_of(s.begin(), s.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    });
  }

  bool boolean(const YAML::Node& n, const std::string& key) const {
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) fail(n, key, "expected true or false");
    return v;
  }

  std::string path(const YAML::Node& n, const std::string& key) const {
    auto p = str(n, key);
    if (p.empty() || fs::path(p).is_absolute()) return p;
    return (fs::absolute(file_).parent_path() / p).lexically_normal().string();
  }

  /// A file the service reads later (a certificate, a key): it must exist and be readable now,
  /// so a typo fails check-config rather than the first connection.
  std::string readable_file(const YAML::Node& n, const std::string& key) const {
    auto p = path(n, key);
    if (p.empty()) return p;
    std::ifstream in(p);
    if (!in) fail(n, key, "cannot read '" + p + "'");
    return p;
  }

  /// mariadb.tls (or a replica's): enabled, ca_file, cert_file, key_file, verify_server_cert.
  MariaDbTlsConfig tls(const YAML::Node& v, const std::string& key) const {
    MariaDbTlsConfig t;
    if (v.IsNull()) return t;
    only_keys(v, key, {"enabled", "ca_file", "cert_file", "key_file", "verify_server_cert"});
    for (const auto& kv : v) {
      const auto k = kv.first.as<std::string>();
      const auto& n = kv.second;
      const std::string item = key + "." + k;
      if (k == "enabled") t.enabled = boolean(n, item);
      if (k == "ca_file") t.ca_file = readable_file(n, item);
      if (k == "cert_file") t.cert_file = readable_file(n, item);
      if (k == "key_file") t.key_file = readable_file(n, item);
      if (k == "verify_server_cert") t.verify_server_cert = boolean(n, item);
    }
    if (t.cert_file.empty() != t.key_file.empty()) {
      fail(v, key, "cert_file and key_file go together (a client certificate and its key)");
    }
    if (!t.enabled && (!t.ca_file.empty() || !t.cert_file.empty())) {
      fail(v, key + ".enabled",
           "certificate files are set but TLS is off; set enabled: true (or remove them)");
    }
    return t;
  }

  /// Sets one connection key (host, port, socket, user, password_file, database, tls) of `m`;
  /// false when `k` is not one of them.
  bool endpoint_key(MariaDbConfig& m, const std::string& k, const YAML::Node& v,
                    const std::string& key) const {
    if (k == "host") {
      m.host = str(v, key);
    } else if (k == "port") {
      m.port = static_cast<int>(integer(v, key, 1, 65535));
    } else if (k == "socket") {
      m.socket = path(v, key);
    } else if (k == "user") {
      m.user = str(v, key);
    } else if (k == "database") {
      m.database = str(v, key);
    } else if (k == "password_file") {
      m.password_file = path(v, key);
      if (m.password_file.empty()) return true;
      // A regular file, and only its first line (at most 4 KiB): a device or a FIFO named by
      // mistake must not hang start-up or fill the memory.
      std::error_code ec;
      std::ifstream in(m.password_file, std::ios::binary);
      if (!in || !fs::is_regular_file(m.password_file, ec)) {
        fail(v, key, "cannot read password file '" + m.password_file + "'");
      }
      char buf[4096];
      in.read(buf, sizeof buf);
      const std::string_view first(buf, static_cast<size_t>(in.gcount()));
      m.password = std::string(first.substr(0, first.find('\n')));
    } else if (k == "tls") {
      m.tls = tls(v, key);
    } else {
      return false;
    }
    return true;
  }

  /// Calls `fn(value, dotted_key)` for each key of `section` (if the section is present).
  void section(const YAML::Node& root, const std::string& name, const std::set<std::string>& keys,
               const std::function<void(const std::string&, const YAML::Node&, const std::string&)>&
                   fn) const {
    const auto node = root[name];
    if (!node.IsDefined() || node.IsNull()) return;
    only_keys(node, name, keys);
    for (const auto& kv : node) {
      const auto k = kv.first.as<std::string>();
      fn(k, kv.second, name + "." + k);
    }
  }

  Config load() {
    YAML::Node root;
    try {
      root = text_ != nullptr ? YAML::Load(*text_) : YAML::LoadFile(file_);
    } catch (const YAML::BadFile&) {
      throw ConfigError{file_ + ": cannot read the file"};
    } catch (const YAML::ParserException& e) {
      throw ConfigError{file_ + ":" + std::to_string(e.mark.line + 1) +
                        ": YAML syntax error: " + e.msg};
    }
    Config c;
    c.source_path = file_;
    std::vector<size_t> replica_inherits_tls;  // replicas without a `tls` of their own
    if (root.IsNull()) return c;
    only_keys(root, "",
              {"kafka", "mariadb", "batch", "spool", "schemas", "admin", "log", "fleet", "drain",
               "replay"});

    section(root, "kafka",
            {"brokers", "group_id", "topics", "instance_id", "properties", "sasl_password_file"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "brokers") c.kafka.brokers = str(v, key);
              if (k == "sasl_password_file") c.kafka.sasl_password_file = path(v, key);
              if (k == "group_id") c.kafka.group_id = str(v, key);
              if (k == "instance_id") {
                c.kafka.instance_id = str(v, key);
                if (!valid_member_name(c.kafka.instance_id)) {
                  fail(v, key,
                       "expected 1-200 characters of [A-Za-z0-9._-], got '" + c.kafka.instance_id +
                           "'");
                }
              }
              if (k == "topics") {
                if (!v.IsSequence()) fail(v, key, "expected a list of topic names");
                for (const auto& t : v) c.kafka.topics.push_back(str(t, key));
              }
              if (k == "properties") {
                if (v.IsNull()) return;
                if (!v.IsMap()) fail(v, key, "expected a mapping of librdkafka properties");
                for (const auto& p : v) {
                  const auto name = p.first.as<std::string>();
                  const auto value = str(p.second, key + "." + name);
                  check_kafka_property(p.first, key + "." + name, name, value);
                  c.kafka.properties[name] = value;
                }
              }
            });
    section(root, "mariadb",
            {"host", "port", "socket", "user", "password_file", "database", "writers",
             "connect_timeout_ms", "io_timeout_ms", "insert_method", "replicas", "tls"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              auto& m = c.mariadb;
              if (endpoint_key(m, k, v, key)) return;
              if (k == "replicas") {
                if (v.IsNull()) return;
                if (!v.IsSequence()) fail(v, key, "expected a list of replica endpoints");
                for (size_t i = 0; i < v.size(); ++i) {
                  const std::string item = key + "[" + std::to_string(i) + "]";
                  only_keys(v[i], item,
                            {"host", "port", "socket", "user", "password_file", "database", "tls"});
                  MariaDbConfig r;
                  r.database.clear();  // defaults to the primary's, below
                  if (!v[i]["tls"].IsDefined()) replica_inherits_tls.push_back(c.replicas.size());
                  for (const auto& kv : v[i]) {
                    const auto rk = kv.first.as<std::string>();
                    endpoint_key(r, rk, kv.second, item + "." + rk);
                  }
                  c.replicas.push_back(std::move(r));
                }
              }
              if (k == "writers") m.writers = static_cast<int>(integer(v, key, 1, 64));
              if (k == "connect_timeout_ms")
                m.connect_timeout_ms = static_cast<int>(integer(v, key, 1, 3'600'000));
              if (k == "io_timeout_ms")
                m.io_timeout_ms = static_cast<int>(integer(v, key, 1000, 3'600'000));
              if (k == "insert_method") {
                const auto s = str(v, key);
                if (s == "load_data") {
                  m.insert_method = InsertMethod::kLoadData;
                } else if (s == "multi_insert") {
                  m.insert_method = InsertMethod::kMultiInsert;
                } else {
                  fail(v, key, "expected load_data or multi_insert, got '" + s + "'");
                }
              }
            });
    for (auto& r : c.replicas) {
      if (r.database.empty()) r.database = c.mariadb.database;
    }
    for (const size_t i : replica_inherits_tls) c.replicas[i].tls = c.mariadb.tls;
    if (!c.kafka.sasl_password_file.empty()) {
      const auto node = root["kafka"]["sasl_password_file"];
      if (c.kafka.properties.contains("sasl.password")) {
        fail(node, "kafka.sasl_password_file",
             "kafka.properties sets sasl.password too; keep the password in the file only");
      }
      std::ifstream in(c.kafka.sasl_password_file);
      if (!in) {
        fail(node, "kafka.sasl_password_file",
             "cannot read password file '" + c.kafka.sasl_password_file + "'");
      }
      std::getline(in, c.kafka.properties["sasl.password"]);
    }
    section(root, "batch", {"max_rows", "max_bytes", "max_delay_ms"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              // MariaDB reports at most 65535 warnings per statement; duplicate uuids are found
              // through them, so a batch never holds more rows than that.
              if (k == "max_rows") c.batch.max_rows = integer(v, key, 1, 65535);
              if (k == "max_bytes") c.batch.max_bytes = integer(v, key, 1024, 1LL << 30);
              if (k == "max_delay_ms") c.batch.max_delay_ms = integer(v, key, 0, 3'600'000);
            });
    section(root, "spool", {"path", "max_bytes"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "path") c.spool.path = path(v, key);
              if (k == "max_bytes") c.spool.max_bytes = integer(v, key, 0, INT64_MAX);
            });
    section(root, "schemas", {"path", "repository_url", "cache_path", "ca_file", "timeout_ms"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "path") c.schemas_path = path(v, key);
              if (k == "repository_url") {
                auto& url = c.schema_repository.url = str(v, key);
                if (!url.starts_with("http://") && !url.starts_with("https://")) {
                  fail(v, key, "expected an http:// or https:// URL");
                }
                while (url.ends_with('/')) url.pop_back();
              }
              if (k == "cache_path") c.schema_repository.cache_path = path(v, key);
              if (k == "ca_file") c.schema_repository.ca_file = readable_file(v, key);
              if (k == "timeout_ms") c.schema_repository.timeout_ms = integer(v, key, 100, 600'000);
            });
    section(root, "admin", {"listen", "token_file"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "listen") {
                c.admin.listen = str(v, key);
                if (!c.admin.listen.empty()) {
                  if (auto why = bad_listen(c.admin.listen); !why.empty()) fail(v, key, why);
                }
              }
              if (k == "token_file") {
                c.admin.token_file = readable_file(v, key);
                if (!c.admin.token_file.empty()) {
                  std::ifstream in(c.admin.token_file);
                  std::string token;
                  std::getline(in, token);
                  if (token.find_first_not_of(" \t\r") == std::string::npos) {
                    fail(v, key,
                         "'" + c.admin.token_file +
                             "' holds no token on its first line (every request would be "
                             "refused); e.g. `openssl rand -hex 24 > " + c.admin.token_file + "`");
                  }
                }
              }
            });
    section(root, "fleet", {"topic", "heartbeat_ms", "lease_ms", "instance_timeout_ms", "key_file"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "topic") {
                c.fleet.topic = str(v, key);
                if (c.fleet.topic.empty() || c.fleet.topic.size() > 249 ||
                    !valid_member_name(c.fleet.topic)) {
                  fail(v, key, "expected a Kafka topic name: 1-249 characters of [A-Za-z0-9._-]");
                }
              }
              if (k == "heartbeat_ms") c.fleet.heartbeat_ms = integer(v, key, 100, 600'000);
              if (k == "lease_ms") c.fleet.lease_ms = integer(v, key, 500, 600'000);
              if (k == "instance_timeout_ms") {
                c.fleet.instance_timeout_ms = integer(v, key, 1000, 3'600'000);
              }
              if (k == "key_file") c.fleet.key_file = readable_file(v, key);
            });
    section(root, "drain", {"max_rate", "max_replica_lag_s"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "max_rate") c.drain.max_rate = integer(v, key, 0, 100'000'000);
              if (k == "max_replica_lag_s") {
                c.drain.max_replica_lag_s = integer(v, key, 0, 86'400);
              }
            });
    section(root, "replay", {"confirm_above_events"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "confirm_above_events") {
                c.replay.confirm_above_events = integer(v, key, 0, INT64_MAX);
              }
            });
    section(root, "log", {"level", "format"},
            [&](const std::string& k, const YAML::Node& v, const std::string& key) {
              if (k == "level") {
                c.log.level = str(v, key);
                static const std::set<std::string> levels = {"trace", "debug", "info",
                                                             "warn",  "error", "off"};
                if (!levels.contains(c.log.level))
                  fail(v, key, "expected one of trace, debug, info, warn, error, off");
              }
              if (k == "format") {
                const auto f = str(v, key);
                if (f != "text" && f != "json") fail(v, key, "expected text or json");
                c.log.json = f == "json";
              }
            });

    if (!c.admin.listen.empty() && c.admin.token_file.empty() &&
        !is_loopback_listen(c.admin.listen)) {
      fail(root["admin"]["listen"], "admin.listen",
           "'" + c.admin.listen +
               "' is not a loopback address: set admin.token_file too, or anyone who can reach "
               "it could pause Sluice");
    }
    if (c.fleet.lease_ms < 2 * c.fleet.heartbeat_ms) {
      const auto& node = root["fleet"]["lease_ms"].IsDefined() ? root["fleet"]["lease_ms"]
                                                               : root["fleet"]["heartbeat_ms"];
      fail(node, "fleet.lease_ms",
           std::to_string(c.fleet.lease_ms) + " is less than twice fleet.heartbeat_ms (" +
               std::to_string(c.fleet.heartbeat_ms) +
               "): one late heartbeat would stop the instance from writing");
    }
    if (c.fleet.instance_timeout_ms < 2 * c.fleet.lease_ms) {
      const auto& node = root["fleet"]["instance_timeout_ms"].IsDefined()
                             ? root["fleet"]["instance_timeout_ms"]
                             : root["fleet"]["lease_ms"];
      fail(node, "fleet.instance_timeout_ms",
           std::to_string(c.fleet.instance_timeout_ms) + " is less than twice fleet.lease_ms (" +
               std::to_string(c.fleet.lease_ms) +
               "): an instance would count as gone while it may still be writing");
    }
    if (root["kafka"]["topics"].IsDefined() == false || c.kafka.topics.empty()) {
      fail(root["kafka"], "kafka.topics", "at least one topic is required");
    }
    if (!root["schemas"]["path"].IsDefined()) {
      c.schemas_path = path(YAML::Node("schemas"), "schemas.path");
    }
    if (!root["spool"]["path"].IsDefined()) c.spool.path = SpoolConfig{}.path;
    if (c.schema_repository.cache_path.empty()) {
      c.schema_repository.cache_path =
          (fs::path(c.spool.path).lexically_normal().parent_path() / "schema-cache").string();
    }
    if (c.kafka.instance_id.empty()) c.kafka.instance_id = default_instance_id();
    if (c.fleet.topic.empty()) c.fleet.topic = default_fleet_topic(c.kafka.group_id);
    return c;
  }

 private:
  std::string file_;
  const std::string* text_;  ///< the YAML itself, when not read from file_
};

}  // namespace

Result<Config> parse_config(const std::string& yaml, const std::string& path) {
  try {
    return Loader(path, &yaml).load();
  } catch (const ConfigError& e) {
    return Status::error(e.message);
  } catch (const YAML::Exception& e) {
    return Status::error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<Config> load_config(const std::string& path) {
  try {
    return Loader(path).load();
  } catch (const ConfigError& e) {
    return Status::error(e.message);
  } catch (const YAML::Exception& e) {
    return Status::error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

ConfigChanges diff_config(const Config& a, const Config& b) {
  ConfigChanges c;
  const auto& ma = a.mariadb;
  const auto& mb = b.mariadb;
  c.mariadb_endpoint = ma.host != mb.host || ma.port != mb.port || ma.socket != mb.socket ||
                       ma.user != mb.user || ma.password != mb.password;
  c.log_level = a.log.level != b.log.level;
  auto check = [&](bool changed, const char* key) {
    if (changed) c.need_restart.emplace_back(key);
  };
  check(a.kafka.brokers != b.kafka.brokers, "kafka.brokers");
  check(a.kafka.group_id != b.kafka.group_id, "kafka.group_id");
  check(a.kafka.topics != b.kafka.topics, "kafka.topics");
  check(a.kafka.instance_id != b.kafka.instance_id, "kafka.instance_id");
  check(a.fleet.topic != b.fleet.topic, "fleet.topic");
  check(a.fleet.heartbeat_ms != b.fleet.heartbeat_ms, "fleet.heartbeat_ms");
  check(a.fleet.instance_timeout_ms != b.fleet.instance_timeout_ms, "fleet.instance_timeout_ms");
  check(a.fleet.lease_ms != b.fleet.lease_ms, "fleet.lease_ms");
  check(a.fleet.key_file != b.fleet.key_file, "fleet.key_file");
  check(a.drain.max_rate != b.drain.max_rate, "drain.max_rate");
  check(a.drain.max_replica_lag_s != b.drain.max_replica_lag_s, "drain.max_replica_lag_s");
  check(a.kafka.properties != b.kafka.properties, "kafka.properties");
  check(a.kafka.sasl_password_file != b.kafka.sasl_password_file, "kafka.sasl_password_file");
  // Offsets live in the database: moving to another one is a new deployment, not a failover.
  check(ma.database != mb.database, "mariadb.database");
  check(ma.writers != mb.writers, "mariadb.writers");
  check(ma.connect_timeout_ms != mb.connect_timeout_ms, "mariadb.connect_timeout_ms");
  check(ma.io_timeout_ms != mb.io_timeout_ms, "mariadb.io_timeout_ms");
  check(ma.insert_method != mb.insert_method, "mariadb.insert_method");
  // A failover moves the endpoint only (Pipeline::retarget); renewed certificates under the same
  // paths need nothing, since the files are read at each connect.
  check(ma.tls != mb.tls, "mariadb.tls");
  auto endpoints = [](const Config& c) {
    std::vector<std::string> out;
    for (const auto& r : c.replicas) {
      out.push_back(describe_endpoint(r) + "/" + r.database + (r.tls.enabled ? " tls" : ""));
    }
    return out;
  };
  check(endpoints(a) != endpoints(b), "mariadb.replicas");
  check(a.batch.max_rows != b.batch.max_rows, "batch.max_rows");
  check(a.batch.max_bytes != b.batch.max_bytes, "batch.max_bytes");
  check(a.batch.max_delay_ms != b.batch.max_delay_ms, "batch.max_delay_ms");
  check(a.spool.path != b.spool.path, "spool.path");
  check(a.spool.max_bytes != b.spool.max_bytes, "spool.max_bytes");
  check(a.schemas_path != b.schemas_path, "schemas.path");
  check(a.schema_repository.url != b.schema_repository.url, "schemas.repository_url");
  check(a.schema_repository.cache_path != b.schema_repository.cache_path, "schemas.cache_path");
  check(a.schema_repository.ca_file != b.schema_repository.ca_file, "schemas.ca_file");
  check(a.schema_repository.timeout_ms != b.schema_repository.timeout_ms, "schemas.timeout_ms");
  check(a.admin.listen != b.admin.listen, "admin.listen");
  check(a.admin.token_file != b.admin.token_file, "admin.token_file");
  check(a.log.json != b.log.json, "log.format");
  return c;
}

std::string default_fleet_topic(const std::string& group_id) {
  std::string topic = "_sluice_fleet.";
  for (const char ch : group_id) {
    const auto c = static_cast<unsigned char>(ch);
    topic += std::isalnum(c) || ch == '.' || ch == '_' || ch == '-' ? ch : '_';
  }
  return topic.substr(0, 200);
}

std::string default_instance_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "sluice";
  std::string id;
  for (const char* p = host; *p != '\0' && id.size() < 200; ++p) {
    const auto ch = static_cast<unsigned char>(*p);
    id += std::isalnum(ch) || ch == '.' || ch == '-' ? static_cast<char>(ch) : '_';
  }
  return id;
}

std::string describe_endpoint(const MariaDbConfig& m) {
  return m.user + "@" + (m.socket.empty() ? m.host + ":" + std::to_string(m.port) : m.socket);
}

bool is_loopback_listen(const std::string& listen) {
  std::string host;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos) return false;
    host = listen.substr(1, close - 1);
  } else {
    host = listen.substr(0, listen.rfind(':'));
  }
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace sluice
