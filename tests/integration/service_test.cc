// `sluice run` as systemd runs it, without systemd: the test plays the service manager. It
// holds the notification socket (NOTIFY_SOCKET, WATCHDOG_USEC) and hands the process a stderr
// that JOURNAL_STREAM names, then checks READY once the pipeline has started (also when it
// starts paused), STATUS with the state, watchdog pings, STOPPING at SIGTERM, and journal-style
// log lines.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

/// The manager's end of the notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  }
  ~NotifySocket() { close(fd_); }
  /// Reads datagrams until one contains `field` (e.g. "READY=1"); returns it, or "" after
  /// `timeout` (a bound against a hang, not a measurement). Everything read lands in `seen`.
  std::string wait_for(const std::string& field, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      std::string message(buf, static_cast<size_t>(n));
      seen += message + "\n--\n";
      if (message.find(field) != std::string::npos) return message;
    }
    return "";
  }
  std::string seen;

 private:
  int fd_ = -1;
};

class ServiceTest : public StackTest {
 protected:
  /// Starts `sluice run` with the manager's environment: NOTIFY_SOCKET, a 2 s watchdog, and
  /// JOURNAL_STREAM naming the log file the process writes to.
  std::unique_ptr<Process> start_under_manager(const std::string& config) {
    const std::string log = dir_.file("sluice.log");
    std::ofstream(log, std::ios::app).flush();
    struct stat st {};
    EXPECT_EQ(stat(log.c_str(), &st), 0);
    setenv("NOTIFY_SOCKET", socket_path_.c_str(), 1);
    setenv("WATCHDOG_USEC", "2000000", 1);
    setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(),
           1);
    auto sluice = start_sluice(dir_, config);  // no WATCHDOG_PID: meant for the exec'd process
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("JOURNAL_STREAM");
    return sluice;
  }

  std::string socket_path_ = dir_.file("notify");
  NotifySocket manager_{socket_path_};
};

TEST_F(ServiceTest, ReadyOnceConsumingThenWatchdogAndStoppingAndJournalStyleLogs) {
  auto sluice = start_under_manager(config());
  const auto ready = manager_.wait_for("READY=1", 60s);
  ASSERT_EQ(ready, "READY=1\nSTATUS=running; spool 0 events") << manager_.seen << sluice->log();
  // READY comes after the pipeline has started: MariaDB was reached first.
  EXPECT_NE(sluice->log().find("connected to MariaDB"), std::string::npos) << sluice->log();

  produce(20);
  ASSERT_TRUE(wait_for_all()) << sluice->log();
  verify_exact();
  // The loop keeps going, so the watchdog hears from it (every half period: 1 s here).
  EXPECT_EQ(manager_.wait_for("WATCHDOG=1", 30s), "WATCHDOG=1") << manager_.seen;

  sluice->signal(SIGTERM);
  EXPECT_EQ(manager_.wait_for("STOPPING=1", 60s), "STOPPING=1\nSTATUS=stopping") << manager_.seen;
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();

  // Journal-style lines: the priority prefix and no timestamp of their own.
  const std::string log = sluice->log();
  EXPECT_NE(log.find("<6>info  [main] sluice "), std::string::npos) << log;
  EXPECT_NE(log.find("<6>info  [main] told systemd the service is ready (watchdog every 1000 ms)"),
            std::string::npos)
      << log;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    EXPECT_EQ(line[0], '<') << "a line without a priority: " << line;
    EXPECT_FALSE(line.starts_with("20")) << "a timestamp journald would duplicate: " << line;
  }
}

TEST_F(ServiceTest, APausedServiceIsReadyAndSaysWhy) {
  // Pause, stop, and start again: the pause survives, and the service is ready while paused.
  auto first = start_sluice(dir_, config(), "first.log");
  std::string out;
  ASSERT_EQ(cli(*first, {"pause", "--reason", "db1001: kernel\nupdate"}, out), 0) << out;
  first->signal(SIGTERM);
  ASSERT_EQ(first->wait(60s), std::optional<int>(0)) << first->log();

  auto sluice = start_under_manager(config());
  const auto ready = manager_.wait_for("READY=1", 60s);
  EXPECT_EQ(ready, "READY=1\nSTATUS=paused (db1001: kernel update); spool 0 events")
      << manager_.seen << sluice->log();
  EXPECT_EQ(sluice_connections(), 0) << "ready while paused: no connection to MariaDB";
  ASSERT_EQ(cli(*sluice, {"resume"}, out), 0) << out;
  EXPECT_NE(manager_.wait_for("STATUS=running", 30s), "") << manager_.seen;
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

TEST_F(ServiceTest, OutsideSystemdTheLogKeepsItsTimestamps) {
  auto sluice = start_sluice(dir_, config());
  ASSERT_TRUE(wait_until([&] { return !admin_url(*sluice).empty(); }, 30s)) << sluice->log();
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
  const std::string log = sluice->log();
  EXPECT_TRUE(log.starts_with("20")) << log;
  EXPECT_EQ(log.find("<6>"), std::string::npos) << log;
  EXPECT_EQ(manager_.wait_for("READY=1", 1s), "") << "no NOTIFY_SOCKET, no notification";
}

}  // namespace
}  // namespace sluice::testing
