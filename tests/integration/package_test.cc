// The Debian package, built from this build tree with CPack and installed on this machine with
// dpkg, as an operator would: its contents, lintian, the system user and directories the
// maintainer scripts make, the installed `sluice check-config` on the installed config, an
// upgrade that keeps local edits, remove (config and spool stay) and purge (they go, except a
// spool that still holds events), and the installed systemd unit through systemd-analyze.
//
// Needs root and dpkg (CI runs as root on a fresh Debian 12); installs and purges the package
// `sluice` system-wide, so it refuses to run when one is already installed.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;

/// Runs a shell command line; its exit code, and its output in `out`.
int sh(const std::string& command, std::string& out) {
  return run_command({"/bin/sh", "-c", command}, out);
}

std::string sh_out(const std::string& command) {
  std::string out;
  EXPECT_EQ(sh(command, out), 0) << command << "\n" << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool installed() {
  std::string out;
  return sh("dpkg-query -W -f='${db:Status-Status}' sluice 2>/dev/null", out) == 0 &&
         out != "not-installed";
}

/// "owner:group mode" of a path, e.g. "root:sluice 750".
std::string owner_mode(const std::string& path) { return sh_out("stat -c '%U:%G %a' " + path); }

class PackageTest : public StackTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the package test installs a package: run it as root";
    ASSERT_FALSE(installed())
        << "a sluice package is installed on this machine already; this test installs and "
           "purges its own (dpkg --purge sluice first)";
    StackTest::SetUp();
    // The package of this build tree, as `cmake --build build --target package` makes it.
    std::string out;
    ASSERT_EQ(run_command({"cpack", "-G", "DEB", "--config", binary_dir() + "/CPackConfig.cmake",
                           "-B", pkg_.path()},
                          out),
              0)
        << out;
    for (const auto& f : fs::directory_iterator(pkg_.path())) {
      if (f.path().extension() == ".deb") deb_ = f.path().string();
    }
    ASSERT_FALSE(deb_.empty()) << out;
  }
  void TearDown() override {
    std::string out;
    if (installed()) sh("dpkg --purge sluice", out);
    if (planted_spool_) sh("rm -rf /var/lib/sluice", out);
  }

  void install() {
    std::string out;
    ASSERT_EQ(sh("dpkg -i " + deb_, out), 0) << out;
    ASSERT_TRUE(installed());
  }

  TempDir pkg_;
  std::string deb_;
  bool planted_spool_ = false;
};

TEST_F(PackageTest, HoldsTheServiceItsFilesAndNothingOfTheTests) {
  const std::string files = sh_out("dpkg-deb -c " + deb_ + " | awk '{print $6}'");
  for (const char* f :
       {"./usr/bin/sluice", "./lib/systemd/system/sluice.service", "./etc/sluice/sluice.yaml",
        "./usr/share/sluice/schemas/NavigationTiming/15485142.json",
        "./usr/share/sluice/grafana/sluice-dashboard.json",
        "./usr/share/sluice/prometheus/sluice-alerts.yml", "./usr/share/doc/sluice/copyright",
        "./usr/share/doc/sluice/changelog.Debian.gz", "./usr/share/doc/sluice/reference.md",
        "./usr/share/doc/sluice/operations.md", "./usr/share/man/man1/sluice.1.gz"}) {
    EXPECT_NE(files.find(std::string(f) + "\n"), std::string::npos) << f << "\n" << files;
  }
  for (const char* f : {"testbroker", "eventgen", "_test", "TestSchema", "bench"}) {
    EXPECT_EQ(files.find(f), std::string::npos) << f << " is a test tool\n" << files;
  }
  EXPECT_EQ(sh_out("dpkg-deb -f " + deb_ + " Package Version Architecture"),
            std::string("Package: sluice\nVersion: ") + "0.1.0-1\nArchitecture: amd64");
  // Dependencies computed from the binary's libraries, plus adduser for postinst. (Debian's
  // RocksDB CMake package links librocksdb.a: its compression libraries show instead.)
  const std::string depends = sh_out("dpkg-deb -f " + deb_ + " Depends");
  for (const char* d : {"adduser", "librdkafka1", "libmariadb3", "libsystemd0", "libsnappy1v5"}) {
    EXPECT_NE(depends.find(d), std::string::npos) << depends;
  }
  EXPECT_EQ(sh_out("dpkg-deb --ctrl-tarfile " + deb_ + " | tar -xO ./conffiles"),
            "/etc/sluice/sluice.yaml");
  EXPECT_EQ(sh_out("dpkg-deb -c " + deb_ + " | awk '$6 == \"./usr/bin/sluice\" {print $1}'"),
            "-rwxr-xr-x");
  EXPECT_EQ(sh_out("dpkg-deb --fsys-tarfile " + deb_ + " | tar -xO ./usr/bin/sluice > " +
                   pkg_.file("sluice") + " && readelf -S " + pkg_.file("sluice") +
                   " | grep -c debug_info || true"),
            "0")
      << "the binary is stripped";
}

TEST_F(PackageTest, LintianHasNothingToSayThatIsNotExplained) {
  std::string out;
  // Warnings and errors fail; the overrides shipped in the package are each explained in
  // docs/packaging.md.
  EXPECT_EQ(sh("lintian --fail-on error,warning " + deb_, out), 0) << out;
  EXPECT_EQ(out.find("W: "), std::string::npos) << out;
  EXPECT_EQ(out.find("E: "), std::string::npos) << out;
}

TEST_F(PackageTest, InstallsChecksItsConfigUpgradesAndRemovesAndPurgesCleanly) {
  install();
  // The system user, its state directory, and the config and secrets only it may read.
  EXPECT_EQ(sh_out("getent passwd sluice | cut -d: -f6,7"), "/var/lib/sluice:/usr/sbin/nologin");
  EXPECT_EQ(owner_mode("/var/lib/sluice"), "sluice:sluice 750");
  EXPECT_EQ(owner_mode("/etc/sluice"), "root:sluice 750");
  EXPECT_EQ(owner_mode("/etc/sluice/sluice.yaml"), "root:sluice 640");
  EXPECT_EQ(owner_mode("/etc/sluice/password"), "root:sluice 640");
  EXPECT_EQ(owner_mode("/etc/sluice/admin-token"), "root:sluice 640");
  const std::string token = sh_out("cat /etc/sluice/admin-token");
  EXPECT_TRUE(std::regex_match(token, std::regex("[0-9a-f]{48}"))) << token;
  EXPECT_EQ(sh_out("dpkg-query -W -f='${Conffiles}' sluice | awk '{print $1}'"),
            "/etc/sluice/sluice.yaml");

  // The installed binary validates the installed config, also as the service's own user.
  std::string out;
  EXPECT_EQ(
      run_command({"/usr/bin/sluice", "check-config", "--config", "/etc/sluice/sluice.yaml"}, out),
      0)
      << out;
  EXPECT_NE(out.find("/etc/sluice/sluice.yaml: ok (1 topic(s), 3 schema revision(s) in "
                     "/usr/share/sluice/schemas)"),
            std::string::npos)
      << out;
  EXPECT_EQ(sh("runuser -u sluice -- /usr/bin/sluice check-config --config "
               "/etc/sluice/sluice.yaml",
               out),
            0)
      << out;
  EXPECT_TRUE(sh_out("/usr/bin/sluice --version").starts_with("sluice 0.1.0 (git "));

  // An upgrade (here: the same version again) keeps the operator's edits and secrets.
  ASSERT_EQ(sh("sed -i 's/^  group_id: .*/  group_id: \"edited\"/' /etc/sluice/sluice.yaml && "
               "echo s3cret > /etc/sluice/password",
               out),
            0)
      << out;
  install();
  EXPECT_NE(sh_out("cat /etc/sluice/sluice.yaml").find("group_id: \"edited\""), std::string::npos);
  EXPECT_EQ(sh_out("cat /etc/sluice/password"), "s3cret");
  EXPECT_EQ(sh_out("cat /etc/sluice/admin-token"), token) << "the token is never regenerated";

  // Remove: the program goes; the config and the state directory stay, as Debian expects.
  ASSERT_EQ(sh("runuser -u sluice -- touch /var/lib/sluice/state", out), 0) << out;
  ASSERT_EQ(sh("dpkg --remove sluice", out), 0) << out;
  EXPECT_FALSE(fs::exists("/usr/bin/sluice"));
  EXPECT_FALSE(fs::exists("/lib/systemd/system/sluice.service"));
  EXPECT_TRUE(fs::exists("/etc/sluice/sluice.yaml"));
  EXPECT_TRUE(fs::exists("/var/lib/sluice/state"));
  EXPECT_TRUE(installed()) << "config-files remain";

  // Purge: everything goes, the state directory included (it holds no spool). The system user
  // stays, as Debian's policy has it.
  ASSERT_EQ(sh("dpkg --purge sluice", out), 0) << out;
  EXPECT_FALSE(installed());
  EXPECT_FALSE(fs::exists("/etc/sluice"));
  EXPECT_FALSE(fs::exists("/var/lib/sluice"));
  EXPECT_EQ(sh("getent passwd sluice", out), 0);
}

TEST_F(PackageTest, APurgeKeepsASpoolThatStillHoldsEvents) {
  install();
  planted_spool_ = true;
  // A paused service spooled events into the package's spool directory, then stopped.
  std::string out;
  ASSERT_EQ(
      sh("install -d /var/lib/sluice/spool && ln -s /var/lib/sluice/spool " + dir_.file("spool"),
         out),
      0)
      << out;
  auto sluice = start_sluice(dir_, config());
  ASSERT_EQ(cli(*sluice, {"pause", "--reason", "before removing the package"}, out), 0) << out;
  produce(25);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = status(*sluice);
        return s.is_object() && s["spool"].value("events", 0) == 100;
      },
      60s))
      << sluice->log();
  sluice->signal(SIGTERM);
  ASSERT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
  ASSERT_EQ(sh("chown -R sluice:sluice /var/lib/sluice/spool", out), 0) << out;

  ASSERT_EQ(sh("dpkg --remove sluice", out), 0) << out;
  ASSERT_EQ(sh("dpkg --purge sluice 2>&1", out), 0) << out;
  EXPECT_NE(out.find("sluice: /var/lib/sluice/spool held 100 event(s) not yet in MariaDB; kept."),
            std::string::npos)
      << out;
  EXPECT_TRUE(fs::exists("/var/lib/sluice/spool/CURRENT")) << "the spool is never thrown away";
  EXPECT_FALSE(fs::exists("/etc/sluice"));
  // The kept spool is still readable and whole.
  EXPECT_EQ(run_command({binary_dir() + "/main/sluice", "spool", "inspect", "--path",
                         "/var/lib/sluice/spool"},
                        out),
            0)
      << out;
  EXPECT_TRUE(out.starts_with("spool: 100 events")) << out;
}

/// Two hosts in one consumer group: the group's behaviour matters (static members joining at
/// once, a rebalance between them), so on Apache Kafka — the shared three-node cluster — rather
/// than the mock broker, whose group coordinator can leave a second static member without an
/// assignment. The topic matches the shipped `kafka.topics` pattern, `^eventlogging_.*`.
class PackageOnKafkaTest : public PackageTest {
 protected:
  void start_kafka() override {
    cluster_ = &KafkaCluster::shared(3);
    bootstrap_ = cluster_->bootstrap();
    topic_ = "eventlogging_package_" + std::to_string(::getpid());
    idempotent_producer_ = true;
    cluster_->create_topic(topic_, partitions_);
  }

  KafkaCluster* cluster_ = nullptr;
};

TEST_F(PackageOnKafkaTest, TwoHostsFromTheShippedConfigDoNotCollideAndTheCliThereNeedsNoFlags) {
  install();
  // What an operator edits on every host: the brokers, the database's address, its password.
  std::string out;
  ASSERT_EQ(sh("sed -i 's|^  brokers: .*|  brokers: \"" + bootstrap_ + "\"|; s|^  port: 3306$|  port: " +
                   std::to_string(db_->port()) + "|' /etc/sluice/sluice.yaml && cat " +
                   db_->password_file() + " > /etc/sluice/password",
               out),
            0)
      << out;
  // Two hosts on this one machine: each its own host name (a UTS namespace) and its own
  // /var/lib/sluice (a mount namespace). They share this machine's loopback, so the second
  // host's copy of /etc/sluice differs in one line: its admin port, which on two real hosts
  // would not collide.
  const std::string etc_b = dir_.file("etc-b");
  ASSERT_EQ(sh("cp -a /etc/sluice " + etc_b + " && sed -i 's|^  listen: .*|  listen: "
               "\"127.0.0.1:8471\"|' " + etc_b + "/sluice.yaml",
               out),
            0)
      << out;
  std::vector<std::unique_ptr<Process>> hosts;
  for (const std::string host : {"host-a", "host-b"}) {
    const std::string state = dir_.file("state-" + host);
    ASSERT_EQ(sh("install -d -m 0750 -o sluice -g sluice " + state, out), 0) << out;
    const std::string mounts = "mount --bind " + state + " /var/lib/sluice" +
                               (host == "host-b" ? " && mount --bind " + etc_b + " /etc/sluice" : "");
    hosts.push_back(std::make_unique<Process>(
        std::vector<std::string>{"unshare", "--uts", "--mount", "--propagation", "private",
                                 "/bin/sh", "-c",
                                 "hostname " + host + " && " + mounts +
                                     " && exec setpriv --reuid sluice --regid sluice --init-groups /usr/bin/sluice run "
                                     "--config /etc/sluice/sluice.yaml"},
        dir_.file(host + ".log")));
  }
  // EditConflict events: a schema the package ships.
  std::vector<uint64_t> seq(static_cast<size_t>(partitions_), 0);
  auto produce_shipped = [&](size_t count) {
    for (size_t i = 0; i < count; ++i) {
      for (int32_t p = 0; p < partitions_; ++p) {
        producer_->produce(topic_, p,
                           EventFactory::good(2, 1, static_cast<uint32_t>(p),
                                              seq[static_cast<size_t>(p)]++));
      }
    }
    producer_->flush();
  };
  produce_shipped(50);
  const int64_t first = 50 * partitions_;
  auto rows_in = [&] {
    try {
      return db_->scalar("SELECT COUNT(DISTINCT uuid) FROM EditConflict_8860941");
    } catch (const std::exception&) {
      return int64_t{0};
    }
  };
  // On this host, `sluice status` needs no flag: the address and token come from the config.
  nlohmann::json s;
  ASSERT_TRUE(wait_until(
      [&] {
        if (sh("/usr/bin/sluice status --json", out) != 0) return false;
        s = nlohmann::json::parse(out, nullptr, false);
        return s.is_object() && s["fleet"]["instances"].size() == 2 && rows_in() == first;
      },
      90s))
      << out << hosts[0]->log() << hosts[1]->log();
  std::set<std::string> ids;
  for (const auto& i : s["fleet"]["instances"]) ids.insert(i.value("id", ""));
  EXPECT_EQ(ids, (std::set<std::string>{"host-a", "host-b"})) << "the host name is the default id";
  for (auto& h : hosts) ASSERT_TRUE(h->running()) << h->log();
  // The fleet's pause and resume, as the runbook writes them.
  ASSERT_EQ(sh("/usr/bin/sluice pause --reason 'package test' 2>&1", out), 0) << out;
  EXPECT_NE(out.find("2 said so"), std::string::npos) << out;
  produce_shipped(20);
  ASSERT_EQ(sh("/usr/bin/sluice resume --wait 2>&1", out), 0) << out;
  ASSERT_TRUE(wait_until([&] { return rows_in() == first + 20 * partitions_; }, 90s))
      << hosts[0]->log() << hosts[1]->log();
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM EditConflict_8860941"), first + 20 * partitions_)
      << "every event once";
  EXPECT_EQ(db_->scalar("SELECT COUNT(*) FROM sluice_dead_letter"), 0);
  for (auto& h : hosts) {
    ASSERT_TRUE(h->running()) << h->log();
    h->signal(SIGTERM);
    EXPECT_EQ(h->wait(60s), std::optional<int>(0)) << h->log();
  }
}

TEST_F(PackageTest, TheInstalledUnitVerifiesAndIsSandboxed) {
  std::string out;
  if (sh("command -v systemd-analyze", out) != 0) {
    GTEST_SKIP() << "systemd-analyze not found: the installed unit was not verified";
  }
  install();
  const std::string unit = "/lib/systemd/system/sluice.service";
  EXPECT_EQ(sh("systemd-analyze verify " + unit + " 2>&1", out), 0) << out;
  EXPECT_EQ(out, "") << "no complaint about the unit";
  ASSERT_EQ(sh("systemd-analyze security --offline=true --threshold=20 " + unit + " 2>&1", out), 0)
      << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(Overall exposure level for \S+: (\d+\.\d))")))
      << out;
  EXPECT_LE(std::stod(m[1]), 2.0) << out;
  EXPECT_NE(sh_out("grep -c '^Type=notify$' " + unit), "0");
  // The template, as an instance of it.
  const std::string instance = pkg_.file("sluice@b.service");
  ASSERT_EQ(sh("cp /lib/systemd/system/sluice@.service " + instance, out), 0) << out;
  EXPECT_EQ(sh("systemd-analyze verify " + instance + " 2>&1", out), 0) << out;
  EXPECT_EQ(out, "") << "no complaint about the template";
}

}  // namespace
}  // namespace sluice::testing
