// The network-fault harness itself: a cut link is silent both ways (nothing answered, nothing
// closed), a healed one delivers what was held back, a reset one closes, a slow one is slow.

#include "testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

/// Echoes whatever each connection sends, on a free port.
class EchoServer {
 public:
  EchoServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        workers_.emplace_back([c] {
          char buf[4096];
          for (ssize_t n; (n = recv(c, buf, sizeof buf, 0)) > 0;) send(c, buf, n, MSG_NOSIGNAL);
          close(c);
        });
      }
    });
  }
  ~EchoServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (auto& w : workers_) w.join();
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
};

int dial(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{0, 300'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/// What comes back within the receive timeout ("" for nothing, "<closed>" at end of stream).
std::string exchange(int fd, const std::string& bytes) {
  if (!bytes.empty()) send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n == 0) return "<closed>";
  if (n < 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

TEST(TcpProxyTest, ACutLinkIsSilentBothWaysAndAHealedOneDeliversWhatWasHeldBack) {
  EchoServer echo;
  TcpProxy proxy(echo.port());
  const int fd = dial(proxy.port());
  EXPECT_EQ(exchange(fd, "hello"), "hello");
  proxy.cut();
  EXPECT_EQ(exchange(fd, "held"), "") << "an answer through a cut link";
  const int late = dial(proxy.port());  // accepted by the kernel's backlog, then nothing
  EXPECT_EQ(exchange(late, "late"), "");
  proxy.heal();
  std::string got;
  for (int i = 0; i < 10 && got.size() < 4; ++i) got += exchange(fd, "");
  EXPECT_EQ(got, "held");
  got.clear();
  for (int i = 0; i < 10 && got.size() < 4; ++i) got += exchange(late, "");
  EXPECT_EQ(got, "late");
  close(fd);
  close(late);
}

TEST(TcpProxyTest, AResetClosesEveryConnectionAndASlowLinkIsSlow) {
  EchoServer echo;
  TcpProxy proxy(echo.port());
  const int fd = dial(proxy.port());
  EXPECT_EQ(exchange(fd, "a"), "a");
  proxy.reset();
  std::string got;
  for (int i = 0; i < 10 && got.empty(); ++i) got = exchange(fd, "");
  EXPECT_EQ(got, "<closed>");
  close(fd);
  proxy.delay(500ms);
  const int slow = dial(proxy.port());
  EXPECT_EQ(exchange(slow, "b"), "") << "through a 500 ms link within 300 ms";
  got.clear();
  for (int i = 0; i < 10 && got.empty(); ++i) got = exchange(slow, "");
  EXPECT_EQ(got, "b");
  close(slow);
  EXPECT_EQ(proxy.connections(), 2u);
}

}  // namespace
}  // namespace sluice::testing
