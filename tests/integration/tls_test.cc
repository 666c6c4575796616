// TLS to MariaDB, end to end: a private mariadbd started with a certificate made by the test
// (openssl) and require_secure_transport=ON, an account that REQUIRES a client certificate,
// and the real `sluice` with mariadb.tls — every event stored exactly once, the replica
// freshness sessions over TLS too; a plaintext attempt and a wrong CA each refused with a clear
// error.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "testing/certificates.h"
#include "testing/harness.h"

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = std::make_unique<Certificates>(dir_, "good");
    ASSERT_NO_FATAL_FAILURE(certs_->issue("server", "localhost", "IP:127.0.0.1,DNS:localhost"));
    ASSERT_NO_FATAL_FAILURE(certs_->issue("client", "sluice", ""));
    // Options for mariadbd (passed through dev-mariadb); the paths hold no spaces.
    db_ = std::make_unique<MariaDb>(
        dir_.file("mariadb"),
        "--ssl-ca=" + certs_->ca() + " --ssl-cert=" + certs_->file("server.pem") +
            " --ssl-key=" + certs_->file("server.key") + " --require-secure-transport=ON");
    ASSERT_EQ(*db_->query("SELECT @@have_ssl")[0][0], "YES");
    ASSERT_EQ(*db_->query("SELECT @@require_secure_transport")[0][0], "1");
    // The account Sluice uses over TCP must show a certificate from our CA.
    db_->exec("ALTER USER 'sluice'@'127.0.0.1' REQUIRE X509");
    broker_ = std::make_unique<Broker>(std::vector<std::string>{"eventlogging_tls:2"}, dir_.path());
  }

  /// A config over TCP with `tls_lines` under mariadb (and a replica on the same server).
  std::string config(const TempDir& dir, const std::string& tls_lines,
                     const std::string& replica_lines = "") {
    return write_config(dir, broker_->bootstrap(), *db_, {"eventlogging_tls"}, "tls",
                        {.extra_yaml = "batch:\n  max_rows: 100\n  max_delay_ms: 100\n",
                         .mariadb_lines = tls_lines + replica_lines,
                         .tcp = true});
  }

  std::string tls_lines(const std::string& ca) const {
    return "  tls:\n    enabled: true\n    ca_file: \"" + ca + "\"\n    cert_file: \"" +
           certs_->file("client.pem") + "\"\n    key_file: \"" + certs_->file("client.key") +
           "\"\n";
  }

  /// Runs `sluice run` on a config that must be refused at start-up; returns its log.
  std::string refused_run(const std::string& tls) {
    TempDir dir;
    auto sluice = start_sluice(dir, config(dir, tls));
    const auto code = sluice->wait(60s);
    EXPECT_EQ(code, std::optional<int>(1)) << sluice->log();
    EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE "
                          "TABLE_SCHEMA = 'log' AND TABLE_NAME = 'sluice_offsets'"),
              0)
        << "nothing was written";
    return sluice->log();
  }

  TempDir dir_;
  std::unique_ptr<Certificates> certs_;
  std::unique_ptr<MariaDb> db_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(TlsTest, OverTlsWithAClientCertificateEveryEventIsStoredExactlyOnce) {
  Producer producer(broker_->bootstrap());
  constexpr uint64_t kPerPartition = 300;
  for (uint64_t seq = 0; seq < kPerPartition; ++seq) {
    for (uint32_t p = 0; p < 2; ++p) {
      producer.produce("eventlogging_tls", static_cast<int32_t>(p),
                       EventFactory::good(3, 1, p, seq));
    }
  }
  producer.flush();
  // The replica freshness sessions use the primary's tls (a replica has none of its own here).
  const std::string replica =
      "  replicas:\n    - host: \"127.0.0.1\"\n      port: " + std::to_string(db_->port()) +
      "\n      password_file: \"" + db_->password_file() + "\"\n";
  auto sluice = start_sluice(dir_, config(dir_, tls_lines(certs_->ca()), replica));
  ASSERT_TRUE(wait_until(
      [&] {
        try {
          return db_->scalar("SELECT COALESCE(SUM(next_offset), 0) FROM sluice_offsets") ==
                 static_cast<int64_t>(2 * kPerPartition);
        } catch (const std::exception&) {
          return false;
        }
      },
      120s))
      << sluice->log();

  // Exactly once, in offset order per partition.
  EXPECT_EQ(EventFactory::exact_fault(db_->query("SELECT uuid FROM TestSchema_1 ORDER BY id"), 2,
                                      kPerPartition),
            "");
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);

  // Every session Sluice holds is encrypted, and the replica check got through.
  EXPECT_GT(db_->scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE "
                        "USER = 'sluice'"),
            0);
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM performance_schema.threads t JOIN "
                        "performance_schema.status_by_thread s USING (THREAD_ID) WHERE "
                        "t.PROCESSLIST_USER = 'sluice' AND s.VARIABLE_NAME = 'Ssl_version' AND "
                        "s.VARIABLE_VALUE NOT LIKE 'TLS%'"),
            0);
  std::string url;
  ASSERT_TRUE(wait_until([&] { return !(url = admin_url(*sluice)).empty(); }, 10s));
  nlohmann::json status;
  ASSERT_TRUE(wait_until(
      [&] {
        std::string out;
        if (run_command({binary_dir() + "/main/sluice", "status", "--json", "--admin", url}, out) !=
            0) {
          return false;
        }
        status = nlohmann::json::parse(out, nullptr, false);
        return status.is_object() && status.contains("replicas") &&
               status["replicas"].size() == 1 && !status["replicas"][0]["tables"].empty();
      },
      30s))
      << status.dump();
  EXPECT_FALSE(status["replicas"][0].contains("error")) << status.dump();
  EXPECT_EQ(status["replicas"][0]["tables"][0]["max_timestamp"],
            status["tables"][0]["max_timestamp"]);

  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
  const std::string password = db_->password();
  ASSERT_FALSE(password.empty());
  EXPECT_EQ(sluice->log().find(password), std::string::npos) << "no secret in the log";
}

TEST_F(TlsTest, APlaintextSessionIsRefusedWithAClearError) {
  // Without REQUIRE X509 the server's own refusal of plaintext is what answers.
  db_->exec("ALTER USER 'sluice'@'127.0.0.1' REQUIRE NONE");
  const std::string log = refused_run("");
  // MariaDB answers "access denied" (its log says no more); Sluice adds what it may mean.
  EXPECT_NE(log.find("MariaDB error 1045 (fatal): Access denied for user 'sluice'@'127.0.0.1'"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("this session was not encrypted and the server offers TLS: if it sets "
                     "require_secure_transport, configure mariadb.tls"),
            std::string::npos)
      << log;
}

TEST_F(TlsTest, AServerCertificateFromAnotherCaIsRefused) {
  Certificates other(dir_, "other");
  const std::string log = refused_run(tls_lines(other.ca()));
  EXPECT_NE(log.find("MariaDB error 2026"), std::string::npos) << log;
  EXPECT_NE(log.find("check ca_file"), std::string::npos) << log;
}

TEST_F(TlsTest, WithoutTheClientCertificateTheAccountRefusesAccess) {
  const std::string log =
      refused_run("  tls:\n    enabled: true\n    ca_file: \"" + certs_->ca() + "\"\n");
  EXPECT_NE(log.find("Access denied for user 'sluice'@'127.0.0.1'"), std::string::npos) << log;
}

TEST(AdminOverHttpsTest, TheCliTalksToATlsProxyItsCaVouchesForAndRefusesOneItDoesNot) {
  // An HTTPS front for the admin endpoint (here `openssl s_server` serving a status answer
  // from files, as a TLS proxy would pass it through), its certificate from the test's own CA.
  TempDir dir;
  Certificates certs(dir, "admin");
  ASSERT_NO_FATAL_FAILURE(certs.issue("proxy", "localhost", "DNS:localhost,IP:127.0.0.1"));
  std::filesystem::create_directories(dir.file("www/v1"));
  std::ofstream(dir.file("www/v1/status")) << R"({"state":"running","spool":{"events":0}})";
  const int port = free_tcp_port();
  ASSERT_GT(port, 0);
  Process proxy({"/bin/sh", "-c",
                 "cd " + dir.file("www") + " && exec openssl s_server -quiet -WWW -accept " +
                     std::to_string(port) + " -cert " + certs.file("proxy.pem") + " -key " +
                     certs.file("proxy.key")},
                dir.file("proxy.log"));
  const std::string bin = binary_dir() + "/main/sluice";
  const std::string url = "https://localhost:" + std::to_string(port);
  std::string out;
  ASSERT_TRUE(wait_until(
      [&] {
        return run_command({"env", "SSL_CERT_FILE=" + certs.ca(), bin, "status", "--admin", url,
                            "--json"},
                           out) == 0;
      },
      10s))
      << out << proxy.log();
  EXPECT_EQ(nlohmann::json::parse(out, nullptr, false).value("state", ""), "running") << out;
  // By address too: the certificate names 127.0.0.1.
  EXPECT_EQ(run_command({"env", "SSL_CERT_FILE=" + certs.ca(), bin, "status", "--admin",
                         "https://127.0.0.1:" + std::to_string(port), "--json"},
                        out),
            0)
      << out;
  // A CA that did not sign it: refused, never sent the token.
  Certificates other(dir, "other");
  EXPECT_EQ(run_command({"env", "SSL_CERT_FILE=" + other.ca(), bin, "status", "--admin", url}, out),
            3)
      << out;
  EXPECT_NE(out.find("certificate verify failed"), std::string::npos) << out;
  // Plain HTTP to a TLS port is not mistaken for an answer.
  EXPECT_NE(run_command({bin, "status", "--admin", "http://127.0.0.1:" + std::to_string(port)}, out),
            0)
      << out;
  proxy.signal(SIGTERM);
  proxy.wait(10s);
}

}  // namespace
}  // namespace sluice::testing
