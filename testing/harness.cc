#include "testing/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::testing {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string binary_dir() {
  const char* d = std::getenv("SLUICE_BINARY_DIR");
  return d ? d : SLUICE_BINARY_DIR_DEFAULT;
}

std::string source_dir() {
  const char* d = std::getenv("SLUICE_SOURCE_DIR");
  return d ? d : SLUICE_SOURCE_DIR_DEFAULT;
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "sluice-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("SLUICE_KEEP_TEST_DIRS") != nullptr) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Process::Process(std::vector<std::string> argv, const std::string& log_file) : log_file_(log_file) {
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::perror("execvp");
    _exit(127);
  }
}

Process::~Process() {
  if (running()) {
    signal(SIGKILL);
    (void)wait(5s);
  }
}

bool Process::running() {
  if (status_) return false;
  int st = 0;
  struct rusage usage {};
  const pid_t r = wait4(pid_, &st, WNOHANG, &usage);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usage_ = usage;
    return false;
  }
  return r == 0;
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
  return status_;
}

std::string Process::log() const {
  std::ifstream in(log_file_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int run_command(const std::vector<std::string>& argv, std::string& output) {
  TempDir dir;
  Process p(argv, dir.file("out.log"));
  const auto code = p.wait(300s);
  output = p.log();
  return code.value_or(-1);
}

std::string raw_exchange(int port, const std::string& bytes, bool half_close) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return "<connect failed>";
  }
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)!write(fd, bytes.data(), bytes.size());
  if (half_close) shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

// --- MariaDb ------------------------------------------------------------------------------

MariaDb::MariaDb(const std::string& dir, std::string extra_options)
    : dir_(dir), extra_options_(std::move(extra_options)) {
  start();
}

MariaDb::~MariaDb() {
  if (conn_ != nullptr) mysql_close(conn_);
  std::string out;
  run_command({source_dir() + "/scripts/dev-mariadb", "stop", dir_}, out);
}

void MariaDb::start() {
  std::string out;
  const int code = run_command({"/usr/bin/env", "MARIADB_EXTRA_OPTS=" + extra_options_,
                                source_dir() + "/scripts/dev-mariadb", "start", dir_},
                               out);
  if (code != 0) throw std::runtime_error("dev-mariadb start failed: " + out);
  const auto s = out.find("socket=");
  const auto p = out.find(" port=");
  if (s == std::string::npos || p == std::string::npos) {
    throw std::runtime_error("dev-mariadb printed no socket: " + out);
  }
  socket_ = out.substr(s + 7, p - s - 7);
  port_ = std::stoi(out.substr(p + 6));
}

std::string MariaDb::password() const {
  std::string password;
  std::getline(std::ifstream(password_file()), password);
  return password;
}

void MariaDb::stop() {
  if (conn_ != nullptr) mysql_close(conn_);
  conn_ = nullptr;
  std::string out;
  run_command({source_dir() + "/scripts/dev-mariadb", "stop", dir_}, out);
}

void MariaDb::kill9() {
  if (conn_ != nullptr) mysql_close(conn_);
  conn_ = nullptr;
  std::string out;
  run_command({source_dir() + "/scripts/dev-mariadb", "kill", dir_}, out);
}

MYSQL* MariaDb::connection() {
  if (conn_ != nullptr && mysql_ping(conn_) == 0) return conn_;
  if (conn_ != nullptr) mysql_close(conn_);
  conn_ = mysql_init(nullptr);
  if (mysql_real_connect(conn_, "localhost", "root", nullptr, "log", 0, socket_.c_str(), 0) ==
      nullptr) {
    const std::string err = mysql_error(conn_);
    mysql_close(conn_);
    conn_ = nullptr;
    throw std::runtime_error("connect as root: " + err);
  }
  return conn_;
}

void MariaDb::exec(const std::string& sql) { (void)query(sql); }

void MariaDb::set_sluice_grant(const std::string& privilege, bool granted) {
  for (const char* host : {"localhost", "127.0.0.1"}) {
    exec((granted ? "GRANT " : "REVOKE ") + privilege + " ON log.* " + (granted ? "TO" : "FROM") +
         " 'sluice'@'" + host + "'");
  }
}

void MariaDb::dump(const std::string& file) {
  std::string out;
  if (run_command({"/bin/sh", "-c",
                   "mariadb-dump --no-defaults -S '" + socket_ +
                       "' -uroot --single-transaction log > '" + file + "'"},
                  out) != 0) {
    throw std::runtime_error("mariadb-dump failed: " + out);
  }
}

void MariaDb::load(const std::string& file) {
  std::string out;
  if (run_command({"/bin/sh", "-c",
                   "mariadb --no-defaults -S '" + socket_ + "' -uroot log < '" + file + "'"},
                  out) != 0) {
    throw std::runtime_error("loading the dump failed: " + out);
  }
}

std::vector<std::vector<std::optional<std::string>>> MariaDb::query(const std::string& sql) {
  MYSQL* m = connection();
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) {
    throw std::runtime_error("SQL failed: " + sql + ": " + mysql_error(m));
  }
  std::vector<std::vector<std::optional<std::string>>> rows;
  MYSQL_RES* res = mysql_store_result(m);
  if (res == nullptr) return rows;
  const unsigned n = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    const unsigned long* len = mysql_fetch_lengths(res);
    auto& r = rows.emplace_back();
    for (unsigned i = 0; i < n; ++i) {
      r.push_back(row[i] ? std::optional<std::string>(std::string(row[i], len[i])) : std::nullopt);
    }
  }
  mysql_free_result(res);
  return rows;
}

int64_t MariaDb::scalar(const std::string& sql) {
  const auto rows = query(sql);
  if (rows.empty() || rows[0].empty() || !rows[0][0]) return 0;
  return std::stoll(*rows[0][0]);
}

int64_t MariaDb::table_rows(const std::string& table) {
  try {
    return scalar("SELECT COUNT(*) FROM `" + table + "`");
  } catch (const std::exception&) {
    return 0;
  }
}

// --- Broker -------------------------------------------------------------------------------

Broker::Broker(const std::vector<std::string>& topics, const std::string& dir) {
  std::vector<std::string> argv = {binary_dir() + "/tools/sluice-testbroker", "--bootstrap-file",
                                   dir + "/bootstrap"};
  for (const auto& t : topics) {
    argv.push_back("--topic");
    argv.push_back(t);
  }
  process_ = std::make_unique<Process>(argv, dir + "/broker.log");
  if (!wait_until([&] { return fs::exists(dir + "/bootstrap"); }, 10s)) {
    throw std::runtime_error("broker did not start: " + process_->log());
  }
  std::ifstream in(dir + "/bootstrap");
  std::getline(in, bootstrap_);
}

// --- Producer -----------------------------------------------------------------------------

Producer::Producer(const std::string& bootstrap, const std::string& compression, bool idempotent) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  if (idempotent) {
    // Exactly once and in order into Kafka even when a leader dies mid-send: the tests then
    // know every offset a partition holds.
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
  }
  rd_kafka_conf_set(conf, "compression.codec", compression.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  // Partitions a test adds are known within a second.
  rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "1000", err, sizeof err);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, this);
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk_ == nullptr) throw std::runtime_error(std::string("producer: ") + err);
}

Producer::~Producer() {
  rd_kafka_flush(rk_, 10000);
  rd_kafka_destroy(rk_);
}

void Producer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  --self->outstanding_;
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->errors_.push_back(rd_kafka_err2str(msg->err));
    return;
  }
  self->offsets_[{rd_kafka_topic_name(msg->rkt), msg->partition}].push_back(msg->offset);
}

void Producer::produce(const std::string& topic, int32_t partition, const std::string& payload,
                       int64_t timestamp_ms, const std::optional<std::string>& key) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  void* key_bytes = key ? const_cast<char*>(key->data()) : nullptr;
  const size_t key_size = key ? key->size() : 0;
  for (;;) {
    const auto err =
        rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(key_bytes, key_size),
                          RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION &&
                                                 std::chrono::steady_clock::now() < deadline)) {
      rd_kafka_poll(rk_, 50);  // full, or a partition added a moment ago
      continue;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(err));
    }
    ++outstanding_;
    rd_kafka_poll(rk_, 0);
    return;
  }
}

void Producer::flush() {
  if (rd_kafka_flush(rk_, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR || outstanding_ != 0) {
    throw std::runtime_error("producer flush timed out");
  }
  if (!errors_.empty()) throw std::runtime_error("delivery failed: " + errors_.front());
}

// --- EventFactory -------------------------------------------------------------------------

std::string EventFactory::uuid_for(uint32_t topic_index, uint32_t partition, uint64_t seq) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%016llx", topic_index, partition,
                static_cast<unsigned long long>(seq));
  return buf;
}

void EventFactory::parse_uuid(const std::string& uuid, uint32_t& topic_index, uint32_t& partition,
                              uint64_t& seq) {
  topic_index = static_cast<uint32_t>(std::stoul(uuid.substr(0, 8), nullptr, 16));
  partition = static_cast<uint32_t>(std::stoul(uuid.substr(8, 8), nullptr, 16));
  seq = std::stoull(uuid.substr(16, 16), nullptr, 16);
}

std::string EventFactory::exact_fault(
    const std::vector<std::vector<std::optional<std::string>>>& rows, uint32_t partitions,
    uint64_t per_partition) {
  std::map<uint32_t, uint64_t> next;  // each partition's next sequence due
  for (const auto& r : rows) {
    if (!r.at(0)) return "a row without a uuid";
    uint32_t t = 0, p = 0;
    uint64_t seq = 0;
    parse_uuid(*r[0], t, p, seq);
    if (partitions > 0 && p >= partitions) {
      return "uuid " + *r[0] + " of partition " + std::to_string(p);
    }
    // Sequences come in order from 0: one below the next due was seen already.
    if (seq < next[p]) return "uuid " + *r[0] + " twice";
    if (seq != next[p]) {
      return "partition " + std::to_string(p) + ": sequence " + std::to_string(seq) + " where " +
             std::to_string(next[p]) + " was due";
    }
    ++next[p];
  }
  for (uint32_t p = 0; p < partitions; ++p) next.try_emplace(p, 0);
  for (const auto& [p, n] : next) {
    if (n != per_partition) {
      return "partition " + std::to_string(p) + ": " + std::to_string(n) + " of " +
             std::to_string(per_partition) + " events";
    }
  }
  return "";
}

std::string EventFactory::table(int which) {
  switch (which) {
    case 0:
      return "NavigationTiming_15485142";
    case 1:
      return "SaveTiming_15396492";
    case 2:
      return "EditConflict_8860941";
    default:
      return "TestSchema_1";
  }
}

std::string EventFactory::good(int which, uint32_t topic_index, uint32_t partition, uint64_t seq) {
  const std::string uuid = uuid_for(topic_index, partition, seq);
  const std::string s = std::to_string(seq);
  const std::string head = R"("uuid":")" + uuid +
                           R"(","wiki":"enwiki","webHost":"en.wikipedia.org","recvFrom":"cp1",)"
                           R"("seqId":)" +
                           s + R"(,"timestamp":)" +
                           std::to_string(1700000000000LL + static_cast<int64_t>(seq)) +
                           R"j(,"userAgent":"Mozilla/5.0 (X11; Linux)",)j";
  switch (which) {
    case 0: {
      std::string e = R"("schema":"NavigationTiming","revision":15485142,"event":{"isAnon":)" +
                      std::string(seq % 2 ? "true" : "false") + R"(,"connectStart":)" + s +
                      R"(,"connectEnd":)" + std::to_string(seq + 7) +
                      R"(,"responseStart":120,"domComplete":900,"loadEventEnd":950,)"
                      R"("mediaWikiLoadEnd":800,"netinfoDownlink":1.45,"deviceMemory":8,)"
                      R"("action":"view","mobileMode":"stable","originCountry":"NL",)"
                      R"("mediaWikiVersion":"1.42.0-wmf.5","pageviewToken":"tok)" +
                      s + "\"";
      if (seq % 3 == 0) e += R"(,"isOversample":true,"oversampleReason":"[\"geo:NL\"]")";
      if (seq % 5 == 0) e += R"(,"netinfoEffectiveConnectionType":"4g","transferSize":51234)";
      return "{" + head + e + "}}";
    }
    case 1:
      return "{" + head + R"("schema":"SaveTiming","revision":15396492,"event":{"saveTiming":)" +
             std::to_string(1000 + seq % 977) + R"(,"mediaWikiVersion":"1.42.0-wmf.5"}})";
    case 2:
      return "{" + head +
             R"("schema":"EditConflict","revision":8860941,"event":{"namespace":0,"pageId":)" + s +
             R"(,"revId":)" + std::to_string(seq * 3) + R"(,"userId":42,"title":"Ünïcödé_page_)" +
             s + R"(","userText":"Zoë 😀"}})";
    default:
      return "{" + head + R"("schema":"TestSchema","revision":1,"event":{"value":"héllo\t😀 )" + s +
             R"(","seq":)" + s + R"(,"count":)" + s +
             R"(,"ratio":0.25,"flag":true,"color":"green","tags":["a",1],)"
             R"("nested":{"deeplyNested":{"pi":3.14159},"label":"n"}}})";
  }
}

std::string EventFactory::renamed(const std::string& schema, int64_t revision, uint32_t topic_index,
                                  uint32_t partition, uint64_t seq) {
  std::string e = good(3, topic_index, partition, seq);
  const std::string from = R"("schema":"TestSchema","revision":1)";
  e.replace(e.find(from), from.size(),
            R"("schema":")" + schema + R"(","revision":)" + std::to_string(revision));
  return e;
}

std::string EventFactory::test_schema_document() {
  std::ifstream in(source_dir() + "/schemas/TestSchema/1.json");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string EventFactory::platform_schema_document(PlatformVersion version) {
  // 1.0.0 and 1.1.0 are shipped (schemas/test/click/); the refused ones are 1.0.0 changed.
  const bool grown = version == PlatformVersion::k1_1;
  std::ifstream in(source_dir() + "/schemas/test/click/" + (grown ? "1.1.0" : "1.0.0") + ".json");
  std::stringstream text;
  text << in.rdbuf();
  std::string doc = text.str();
  auto change = [&doc](const std::string& from, const std::string& to) {
    doc.replace(doc.find(from), from.size(), to);
  };
  if (version == PlatformVersion::kRetyped || version == PlatformVersion::kRemoved) {
    change("/test/click/1.0.0", "/test/click/1.2.0");
    change(R"("count": {"type": "integer"},)",
           version == PlatformVersion::kRetyped ? R"("count": {"type": "string"},)" : "");
  }
  return doc;
}

std::string EventFactory::platform_schema_file(PlatformVersion version) {
  const char* v = version == PlatformVersion::k1_0   ? "1.0.0"
                  : version == PlatformVersion::k1_1 ? "1.1.0"
                                                     : "1.2.0";
  return std::string(kPlatformTitle) + "/" + v + ".json";
}

std::string EventFactory::platform_event(PlatformVersion version, uint32_t topic_index,
                                         uint32_t partition, uint64_t seq) {
  const std::string hex = uuid_for(topic_index, partition, seq);
  const std::string id = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
                         hex.substr(16, 4) + "-" + hex.substr(20);
  const std::string file = platform_schema_file(version);
  const int64_t second = 1'700'000'000 + static_cast<int64_t>(seq % 86'400);
  char dt[32];
  const std::time_t t = second;
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(dt, sizeof dt, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string e = R"({"$schema":")" + file.substr(0, file.size() - 5) +
                  R"(","meta":{"stream":"test.click","id":")" + id + R"(","dt":")" + dt +
                  R"(","domain":"en.wikipedia.org"},"dt":")" + dt + R"(","action":"click-)" +
                  std::to_string(seq) + "\"";
  if (version == PlatformVersion::kRetyped) e += R"(,"count":")" + std::to_string(seq) + "\"";
  if (version == PlatformVersion::k1_0 || version == PlatformVersion::k1_1) {
    e += R"(,"count":)" + std::to_string(seq);
  }
  if (version == PlatformVersion::k1_1) {
    e += R"(,"session":{"id":"s)" + std::to_string(seq % 7) + R"("},"ratio":0.5)";
  }
  return e + "}";
}

std::string EventFactory::retitled(std::string text, const std::string& title) {
  const std::string from = kPlatformTitle;
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += title.size()) {
    text.replace(at, from.size(), title);
  }
  return text;
}

std::string EventFactory::navigation_timing(uint32_t topic_index, uint32_t partition,
                                            uint64_t seq) {
  const std::string uuid = uuid_for(topic_index, partition, seq);
  const int64_t ms = 1'700'000'000'000LL + static_cast<int64_t>(seq) * 37;
  // Deterministic variety from the sequence number.
  const uint64_t h = (seq + 1) * 0x9e3779b97f4a7c15ull;
  auto pick = [&](int bit) { return ((h >> bit) & 7) != 0; };  // present 7 times in 8
  auto num = [&](int bit, int mod) {
    return std::to_string((h >> bit) % static_cast<uint64_t>(mod));
  };
  std::string e = "{\"isAnon\":" + std::string(h & 1 ? "true" : "false");
  auto field = [&](const char* name, const std::string& json) {
    e += ",\"";
    e += name;
    e += "\":";
    e += json;
  };
  const char* timings[] = {
      "connectStart", "connectEnd",     "dnsLookup",    "fetchStart",
      "requestStart", "responseStart",  "responseEnd",  "domInteractive",
      "domComplete",  "loadEventStart", "loadEventEnd", "mediaWikiLoadEnd",
      "redirecting",  "unload",         "gaps",         "secureConnectionStart"};
  for (int i = 0; i < 16; ++i) {
    if (pick(i * 3)) field(timings[i], num(i * 2, 4000 + i * 250));
  }
  field("namespaceId", num(5, 16));
  field("revId", std::to_string(1'000'000'000 + seq));
  if (pick(50)) field("transferSize", num(11, 900'000));
  if (pick(52)) field("netinfoRtt", num(13, 600));
  if (pick(54)) field("netinfoDownlink", num(17, 100) + "." + num(19, 100));
  if (pick(56)) field("deviceMemory", seq % 2 ? "8" : "0.5");
  if (pick(58)) field("hardwareConcurrency", num(23, 16));
  field("action", seq % 5 ? "\"view\"" : "\"edit\"");
  if (seq % 7 == 0) field("veaction", "\"edit\"");
  field("mediaWikiVersion", "\"1.42.0-wmf." + num(29, 30) + "\"");
  field("originCountry", seq % 3 ? "\"NL\"" : "\"BR\"");
  if (seq % 11 == 0) {
    field("isOversample", "true");
    field("oversampleReason", "\"[\\\"geo:NL\\\",\\\"wiki:nlwiki\\\"]\"");
  }
  if (seq % 4 == 0) field("mwSpecialPageName", "\"Spécial:Recherche — 検索 😀\"");
  field("pageviewToken", "\"" + uuid.substr(0, 20) + "\"");
  if (pick(60)) field("netinfoConnectionType", "\"wifi\"");
  field("netinfoEffectiveConnectionType", seq % 6 ? "\"4g\"" : "\"3g\"");
  if (pick(61)) field("cacheResponseType", seq % 2 ? "\"hit\"" : "\"miss\"");
  field("mobileMode", seq % 3 == 0 ? "\"stable\"" : seq % 3 == 1 ? "\"beta\"" : "\"alpha\"");
  e += "}";
  std::string capsule =
      "{\"event\":" + e + ",\"schema\":\"NavigationTiming\",\"revision\":15485142,\"uuid\":\"" +
      uuid + "\",\"wiki\":\"" + (seq % 2 ? "enwiki" : "dewiki") + "\",\"webHost\":\"" +
      (seq % 2 ? "en.wikipedia.org" : "de.m.wikipedia.org") + "\",\"recvFrom\":\"cp30" +
      num(31, 60) + ".eqiad.wmnet\",\"seqId\":" + std::to_string(seq) +
      ",\"timestamp\":" + std::to_string(ms);
  if (seq % 2 == 0) capsule += ",\"dt\":\"2023-11-14T22:13:20.123Z\"";
  if (seq % 3 == 0) {
    capsule +=
        ",\"userAgent\":{\"browser_family\":\"Firefox\",\"browser_major\":\"119\","
        "\"os_family\":\"Ubuntu\",\"os_major\":\"22\",\"device_family\":\"Other\","
        "\"is_bot\":false,\"is_mediawiki\":false}";
  } else {
    capsule +=
        ",\"userAgent\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/119.0.0.0 Safari/537.36\"";
  }
  return capsule + "}";
}

std::string EventFactory::bad(int which, uint64_t seq, std::string& reason) {
  const std::string uuid = uuid_for(0xbad, 0, seq);
  const std::string head = R"({"uuid":")" + uuid + R"(","wiki":"enwiki",)";
  switch (which % kBadClasses) {
    case 0:
      reason = "malformed_json: message";
      return R"({"schema": "TestSchema", "revision": 1, "event": {)";
    case 1:
      reason = "not_object: message";
      return R"(["an", "array"])";
    case 2:
      reason = "unknown_schema: NoSuchSchema";
      return head + R"("schema":"NoSuchSchema","revision":1,"event":{}})";
    case 3:
      reason = "unknown_revision: TestSchema revision 999";
      return head + R"("schema":"TestSchema","revision":999,"event":{"value":"v","seq":1}})";
    case 4:
      reason = "wrong_type: event.count";
      return head +
             R"("schema":"TestSchema","revision":1,"event":{"value":"v","seq":1,"count":"7"}})";
    case 5:
      reason = "missing_required: event.isAnon";
      return head +
             R"("schema":"NavigationTiming","revision":15485142,"event":{"connectStart":1}})";
    case 6:
      reason = "unexpected_field: event.surprise";
      return head +
             R"("schema":"SaveTiming","revision":15396492,"event":{"saveTiming":1,"surprise":2}})";
    default:
      reason = "too_long: event.title";
      return head +
             R"("schema":"EditConflict","revision":8860941,"event":{"namespace":0,"pageId":1,)"
             R"("revId":1,"userId":1,"userText":"u","title":")" +
             std::string(1500, 'x') + R"("}})";
  }
}

void start_replication(MariaDb& primary, MariaDb& replica) {
  primary.exec("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'");
  primary.exec("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'");
  const auto master = primary.query("SHOW MASTER STATUS");
  if (master.empty() || !master[0][0] || !master[0][1]) {
    throw std::runtime_error("the primary has no binary log (start it with kPrimaryOptions)");
  }
  replica.exec(
      "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=" + std::to_string(primary.port()) +
      ", MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_LOG_FILE='" + *master[0][0] +
      "', MASTER_LOG_POS=" + *master[0][1]);
  replica.exec("START SLAVE");
}

std::string replicas_lines(const MariaDb& replica) {
  return "  replicas:\n    - socket: \"" + replica.socket() +
         "\"\n      user: sluice\n      password_file: \"" + replica.password_file() + "\"\n";
}

std::string write_config(const TempDir& dir, const std::string& bootstrap, const MariaDb& db,
                         const std::vector<std::string>& topics, const std::string& group,
                         const ConfigOptions& options) {
  std::string topic_list;
  for (const auto& t : topics) topic_list += (topic_list.empty() ? "\"" : ", \"") + t + "\"";
  const std::string path = dir.file("sluice.yaml");
  std::ofstream out(path);
  out << "kafka:\n"
      << "  brokers: \"" << bootstrap << "\"\n"
      << "  group_id: \"" << group << "\"\n"
      << "  topics: [" << topic_list << "]\n";
  if (!options.instance_id.empty()) out << "  instance_id: " << options.instance_id << "\n";
  if (!options.kafka_properties.empty()) {
    out << "  properties:\n";
    for (const auto& [k, v] : options.kafka_properties) {
      out << "    " << k << ": \"" << v << "\"\n";
    }
  }
  out << "mariadb:\n";
  if (options.tcp || options.port != 0) {
    out << "  host: \"127.0.0.1\"\n"
        << "  port: " << (options.port != 0 ? options.port : db.port()) << "\n";
  } else {
    out << "  socket: \"" << db.socket() << "\"\n";
  }
  out << "  user: sluice\n"
      << "  password_file: \"" << db.password_file() << "\"\n"
      << "  database: " << options.database << "\n"
      << options.mariadb_lines << "spool:\n"
      << "  path: \"" << dir.file("spool") << "\"\n"
      << options.spool_lines << "schemas:\n"
      << "  path: \"" << source_dir() << "/schemas\"\n"
      << options.schemas_lines << "admin:\n"
      << "  listen: \"127.0.0.1:0\"\n"
      << options.admin_lines << options.extra_yaml;
  return path;
}

std::string admin_url(const Process& sluice) {
  const std::string log = sluice.log();
  const std::string marker = "admin endpoint on ";
  const auto at = log.find(marker);
  if (at == std::string::npos) return "";
  const auto end = log.find_first_of(" \n\"", at + marker.size());  // text or JSON lines
  return "http://" + log.substr(at + marker.size(), end - at - marker.size());
}

std::unique_ptr<Process> start_sluice(const TempDir& dir, const std::string& config,
                                      const std::string& log_name) {
  return std::make_unique<Process>(
      std::vector<std::string>{binary_dir() + "/main/sluice", "run", "--config", config},
      dir.file(log_name));
}

std::vector<uint64_t> model_seeds(const char* seeds_env, const char* runs_env, uint64_t fixed,
                                  int default_runs, const char* first_env) {
  std::vector<uint64_t> out;
  if (const char* s = std::getenv(seeds_env)) {
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) out.push_back(std::stoull(item));
    return out;
  }
  if (const char* first = first_env != nullptr ? std::getenv(first_env) : nullptr) {
    // A sweep: seeds first, first+1, ... (runs of them).
    const uint64_t from = std::stoull(first);
    const int runs = std::getenv(runs_env) ? std::atoi(std::getenv(runs_env)) : default_runs;
    for (int i = 0; i < runs; ++i) out.push_back(from + static_cast<uint64_t>(i));
    return out;
  }
  for (uint64_t seed = 1; seed <= fixed; ++seed) out.push_back(seed);
  const int random_runs = std::getenv(runs_env) ? std::atoi(std::getenv(runs_env)) : default_runs;
  std::random_device rd;
  for (int i = 0; i < random_runs; ++i) out.push_back((uint64_t{rd()} << 32) | rd());
  return out;
}

int free_tcp_port(bool ipv6) {
  const int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_storage a{};
  socklen_t len = 0;
  if (ipv6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&a);
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = in6addr_loopback;
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a4;
  }
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  if (!ok) return -1;
  return ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&a)->sin_port);
}

int64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

SmallDisk::SmallDisk(std::string path, const std::string& size) : path_(std::move(path)) {
  std::filesystem::create_directories(path_);
  std::string out;
  mounted_ = run_command({"mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path_}, out) == 0;
  if (!mounted_) std::cerr << "mount a tmpfs at " << path_ << " (needs root): " << out << "\n";
}

SmallDisk::~SmallDisk() {
  std::string out;
  if (mounted_) run_command({"umount", "-l", path_}, out);
}

bool SmallDisk::grow(const std::string& size) {
  std::string out;
  return run_command({"mount", "-o", "remount,size=" + size, path_}, out) == 0;
}

}  // namespace sluice::testing
