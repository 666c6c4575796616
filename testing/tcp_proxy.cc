#include "testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <stdexcept>
#include <vector>

namespace sluice::testing {
namespace {

using Clock = std::chrono::steady_clock;

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/// Bytes read from one side, waiting to be written to the other (with when they may go).
struct Chunk {
  std::string bytes;
  Clock::time_point due;
};

/// One proxied connection: client ⇄ proxy ⇄ server.
struct Link {
  int client = -1;
  int server = -1;
  bool server_connected = false;
  std::deque<Chunk> to_server, to_client;
  bool client_eof = false, server_eof = false;
  bool dead = false;
};

int connect_to(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  set_nonblocking(fd);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int r = ::connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (r != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/// Reads what is there; false on end of stream or error.
bool pump_in(int fd, std::deque<Chunk>& out, int64_t delay_ms) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.push_back({std::string(buf, static_cast<size_t>(n)),
                     Clock::now() + std::chrono::milliseconds(delay_ms)});
      if (out.size() > 256) return true;  // bounded: read more once written
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

/// Writes what is due; false on error.
bool pump_out(int fd, std::deque<Chunk>& in) {
  const auto now = Clock::now();
  while (!in.empty() && in.front().due <= now) {
    auto& c = in.front();
    const ssize_t n = ::send(fd, c.bytes.data(), c.bytes.size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (static_cast<size_t>(n) < c.bytes.size()) {
      c.bytes.erase(0, static_cast<size_t>(n));
      return true;
    }
    in.pop_front();
  }
  return true;
}

}  // namespace

TcpProxy::TcpProxy(int target_port, int listen_port, std::string target_host)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(listen_port));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0) {
    close(listen_fd_);
    throw std::runtime_error("tcp proxy: cannot listen on port " + std::to_string(listen_port));
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  set_nonblocking(listen_fd_);
  if (pipe(wake_) != 0) throw std::runtime_error("tcp proxy: pipe");
  set_nonblocking(wake_[0]);
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  (void)!write(wake_[1], "x", 1);
  thread_.join();
  close(listen_fd_);
  close(wake_[0]);
  close(wake_[1]);
}

void TcpProxy::cut() {
  cut_ = true;
  (void)!write(wake_[1], "x", 1);
}

void TcpProxy::heal() {
  cut_ = false;
  (void)!write(wake_[1], "x", 1);
}

void TcpProxy::reset() {
  reset_ = true;
  (void)!write(wake_[1], "x", 1);
}

void TcpProxy::run() {
  std::vector<Link> links;
  while (!stop_.load()) {
    const bool cut = cut_.load();
    if (reset_.exchange(false)) {
      for (auto& l : links) l.dead = true;
    }
    // Close what is done.
    for (auto& l : links) {
      const bool drained_both = l.to_server.empty() && l.to_client.empty();
      if (l.dead || (l.client_eof && l.server_eof && drained_both)) {
        if (l.client >= 0) close(l.client);
        if (l.server >= 0) close(l.server);
        l.client = l.server = -1;
        l.dead = true;
      }
    }
    std::erase_if(links, [](const Link& l) { return l.dead; });

    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    // Cut: nothing is accepted, read or written: the kernel's buffers and the listen backlog
    // fill, and both ends hear nothing, as behind a route that drops every packet.
    if (!cut) fds.push_back({listen_fd_, POLLIN, 0});
    auto next_due = Clock::time_point::max();
    for (auto& l : links) {
      if (cut) continue;
      short cev = 0, sev = 0;
      if (!l.client_eof && l.to_server.size() < 256) cev |= POLLIN;
      if (!l.to_client.empty()) {
        if (l.to_client.front().due <= Clock::now()) {
          cev |= POLLOUT;
        } else {
          next_due = std::min(next_due, l.to_client.front().due);
        }
      }
      if (!l.server_connected) {
        sev |= POLLOUT;
      } else {
        if (!l.server_eof && l.to_client.size() < 256) sev |= POLLIN;
        if (!l.to_server.empty()) {
          if (l.to_server.front().due <= Clock::now()) {
            sev |= POLLOUT;
          } else {
            next_due = std::min(next_due, l.to_server.front().due);
          }
        }
      }
      fds.push_back({l.client, cev, 0});
      fds.push_back({l.server, sev, 0});
    }
    int timeout_ms = 200;
    if (next_due != Clock::time_point::max()) {
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(next_due - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 200));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (read(wake_[0], drain, sizeof drain) > 0) {
      }
    }
    if (cut) continue;
    const size_t polled = links.size();  // fds[2 + 2k], fds[3 + 2k] are links[k]'s
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int c = accept(listen_fd_, nullptr, nullptr);
        if (c < 0) break;
        set_nonblocking(c);
        const int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const int s = connect_to(target_host_, target_port_);
        if (s < 0) {
          close(c);
          continue;
        }
        ++connections_;
        Link link;
        link.client = c;
        link.server = s;
        links.push_back(std::move(link));
      }
    }
    const int64_t delay = delay_ms_.load();
    for (size_t k = 0; k < polled; ++k) {
      Link& l = links[k];
      const auto cre = fds[2 + 2 * k].revents;
      const auto sre = fds[3 + 2 * k].revents;
      if (!l.server_connected && (sre & (POLLOUT | POLLERR | POLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(l.server, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          l.dead = true;
          continue;
        }
        l.server_connected = true;
      }
      if ((cre & (POLLIN | POLLHUP)) && !l.client_eof) {
        if (!pump_in(l.client, l.to_server, delay)) l.client_eof = true;
      }
      if (l.server_connected && (sre & (POLLIN | POLLHUP)) && !l.server_eof) {
        if (!pump_in(l.server, l.to_client, delay)) l.server_eof = true;
      }
      if (l.server_connected && !pump_out(l.server, l.to_server)) l.dead = true;
      if (!pump_out(l.client, l.to_client)) l.dead = true;
      // Pass a half close on once everything before it is through.
      if (l.client_eof && l.to_server.empty() && l.server_connected) shutdown(l.server, SHUT_WR);
      if (l.server_eof && l.to_client.empty()) shutdown(l.client, SHUT_WR);
      if ((cre & POLLERR) || (sre & POLLERR)) l.dead = true;
    }
  }
  for (auto& l : links) {
    if (l.client >= 0) close(l.client);
    if (l.server >= 0) close(l.server);
  }
}

}  // namespace sluice::testing
