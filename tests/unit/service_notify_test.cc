#include "main/service_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "testing/harness.h"

namespace sluice::cli {
namespace {

/// A notification socket as systemd's manager holds one: NOTIFY_SOCKET points at it for the
/// notifier built while it lives (and WATCHDOG_USEC/WATCHDOG_PID when asked).
class NotifySocket {
 public:
  explicit NotifySocket(const testing::TempDir& dir, bool watchdog) {
    path_ = dir.file("notify");
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    if (watchdog) {
      setenv("WATCHDOG_USEC", "30000000", 1);
      setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
    }
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    close(fd_);
  }
  /// The next datagram, or "" when none is waiting (never blocks: every send is synchronous).
  std::string next() {
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(ServiceNotifierTest, OutsideSystemdEveryCallIsHarmless) {
  unsetenv("NOTIFY_SOCKET");
  ServiceNotifier n([] { return "running"; }, /*background=*/false);
  EXPECT_FALSE(n.enabled());
  n.ready();
  n.beat();
  EXPECT_EQ(n.tick(), "");
  n.stopping();
}

TEST(ServiceNotifierTest, ReadyCarriesTheStateAndStatusFollowsItsChanges) {
  testing::TempDir dir;
  NotifySocket manager(dir, /*watchdog=*/false);
  std::string state = "paused (db1001: security update); spool 0 events";
  ServiceNotifier n([&state] { return state; }, /*background=*/false);
  ASSERT_TRUE(n.enabled());
  EXPECT_EQ(n.watchdog_period().count(), 0);
  n.ready();
  EXPECT_EQ(manager.next(), "READY=1\nSTATUS=paused (db1001: security update); spool 0 events");
  EXPECT_EQ(n.tick(), "") << "nothing changed, nothing sent";
  EXPECT_EQ(manager.next(), "");
  state = "draining; spool 120 events";
  EXPECT_EQ(n.tick(), "STATUS=draining; spool 120 events");
  EXPECT_EQ(manager.next(), "STATUS=draining; spool 120 events");
  n.stopping();
  EXPECT_EQ(manager.next(), "STOPPING=1\nSTATUS=stopping");
}

TEST(ServiceNotifierTest, WatchdogPingsOnlyWhileTheLoopMakesProgress) {
  testing::TempDir dir;
  NotifySocket manager(dir, /*watchdog=*/true);
  ServiceNotifier n([] { return "running; spool 0 events"; }, /*background=*/false);
  EXPECT_EQ(n.watchdog_period(), std::chrono::seconds(30));
  n.ready();
  EXPECT_EQ(manager.next(), "READY=1\nSTATUS=running; spool 0 events");
  EXPECT_EQ(n.tick(), "") << "the loop has not completed a round since READY: no ping";
  n.beat();
  n.beat();
  EXPECT_EQ(n.tick(), "WATCHDOG=1");
  EXPECT_EQ(manager.next(), "WATCHDOG=1");
  EXPECT_EQ(n.tick(), "") << "a stuck loop stops the pings, so systemd restarts the service";
  EXPECT_EQ(manager.next(), "");
  n.beat();
  EXPECT_EQ(n.tick(), "WATCHDOG=1");
}

TEST(ServiceNotifierTest, AWatchdogMeantForAnotherProcessIsIgnored) {
  testing::TempDir dir;
  NotifySocket manager(dir, /*watchdog=*/true);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  ServiceNotifier n([] { return "running"; }, /*background=*/false);
  EXPECT_EQ(n.watchdog_period().count(), 0);
  n.beat();
  EXPECT_EQ(n.tick(), "STATUS=running");
}

}  // namespace
}  // namespace sluice::cli
