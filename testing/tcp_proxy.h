#pragma once
/// A TCP proxy on loopback that a test can cut and heal: the network between one process and a
/// server, so that a test can partition one link while the others work (DESIGN.md §5: partial
/// failures are tested with cut links, not only with killed processes). Not used by
/// production code.
///
/// Cut, it black-holes as a dropped route does — it neither answers nor closes: bytes already
/// accepted stay unread, connections in progress are neither accepted nor refused (they wait in
/// the listen backlog), so both ends see silence and time out by themselves. Healed, it
/// forwards again what was held back. `reset` closes every connection (a link that came back
/// with its state lost). `delay` holds each chunk that long before forwarding it (a slow
/// link).
///
/// Thread safety: every method from any thread; the proxy has one thread of its own.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace sluice::testing {

class TcpProxy {
 public:
  /// Listens on 127.0.0.1:`listen_port` (0: a free port) and forwards every connection to
  /// `target_host`:`target_port`. Throws std::runtime_error when it cannot listen.
  TcpProxy(int target_port, int listen_port = 0, std::string target_host = "127.0.0.1");
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void cut();
  void heal();
  bool is_cut() const { return cut_.load(); }
  /// Closes every connection now (new ones are still accepted unless cut).
  void reset();
  void delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }
  /// Connections accepted so far.
  uint64_t connections() const { return connections_.load(); }

 private:
  void run();

  std::string target_host_;
  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  ///< a pipe that wakes the thread
  std::atomic<bool> cut_{false};
  std::atomic<bool> reset_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
};

}  // namespace sluice::testing
