#include "admin/admin_server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "admin/admin_router.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace sluice::admin {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr int kMaxConnections = 64;
constexpr int kMaxRequestsPerConnection = 100;
/// Pause and resume requests waiting for the pipeline at once; more are refused with 503.
constexpr int kMaxWaitingCommands = 4;

}  // namespace

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Length is not secret (tokens have a fixed format); the contents are.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error("admin.token_file: cannot read '" + path + "'");
  std::string token;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) return Status::error("admin.token_file: '" + path + "' is empty");
  return token;
}

struct AdminServer::Impl {
  std::string token;
  AdminTimeouts timeouts;
  AdminHandlers handlers;
  std::atomic<int> connections{0};
  std::atomic<int> waiting_commands{0};
  int port = 0;
  std::string address;  ///< host:port, an IPv6 host in brackets
  // Declared after what sessions touch: destroyed first, with any handler still holding one.
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  /// Pause and resume wait here for the pipeline, off the I/O thread; joined by stop().
  net::thread_pool blocking{1};
  std::thread thread;

  void accept();
};

namespace {

/// One HTTP connection. Held by shared_ptr because it must outlive each pending asynchronous
/// operation, whose completion handlers keep it alive (Asio's usual ownership pattern).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, AdminServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {}
  ~Session() { --server_.connections; }

  void read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    stream_.expires_after(server_.timeouts.read);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec) {
      if (auto answer = reply_for_read_error(ec)) return reply(std::move(*answer), false);
      return close();  // end of stream, timeout, reset: nothing to answer
    }
    handle(parser_->get());
  }

  void handle(const http::request<http::string_body>& req) {
    const bool keep_alive = req.keep_alive() && ++requests_ < kMaxRequestsPerConnection;
    Routed routed = route_request(req, server_.token, server_.handlers);
    switch (routed.kind) {
      case Routed::Kind::kReply:
        return reply(std::move(routed.reply), keep_alive);
      case Routed::Kind::kNone:
        return close();
      case Routed::Kind::kPause:
      case Routed::Kind::kResume:
        break;
    }
    if (++server_.waiting_commands > kMaxWaitingCommands) {
      --server_.waiting_commands;
      return reply({503, error_json("busy: " + std::to_string(kMaxWaitingCommands) +
                                    " pause/resume requests are already waiting; retry")},
                   keep_alive);
    }
    // Pause waits for quiet (bounded), so it runs off the I/O thread: other connections,
    // /healthz included, are served meanwhile. The session stays alive through `self`. No
    // deadline runs while it waits; the answer gets a write deadline of its own (reply()).
    stream_.expires_never();
    auto self = shared_from_this();
    const bool is_pause = routed.kind == Routed::Kind::kPause;
    net::post(server_.blocking, [self, is_pause, local = routed.local,
                                 reason = std::move(routed.reason), keep_alive] {
      auto result = is_pause ? self->server_.handlers.pause(reason, local)
                             : self->server_.handlers.resume();
      --self->server_.waiting_commands;
      net::post(self->stream_.get_executor(), [self, result = std::move(result), keep_alive] {
        if (result) {
          self->reply({200, result.value()}, keep_alive);
        } else {
          // 504: asked in time but not done in time (it goes on); 503: refused.
          const bool late = result.status().kind() == ErrorKind::kTimeout;
          self->reply({late ? 504u : 503u, error_json(result.status().message())}, keep_alive);
        }
      });
    });
  }

  void reply(AdminReply answer, bool keep_alive) {
    res_ = {};
    res_.result(answer.status);
    res_.version(11);
    res_.set(http::field::server, "sluice");
    res_.set(http::field::content_type, answer.content_type);
    if (!answer.allow.empty()) res_.set(http::field::allow, answer.allow);
    res_.keep_alive(keep_alive);
    res_.body() = std::move(answer.body);
    if (res_.body().empty() || res_.body().back() != '\n') res_.body().push_back('\n');
    res_.prepare_payload();
    // The read deadline is spent (it may even have passed while a pause waited, and an expired
    // deadline closes the socket under the write): the answer gets a deadline of its own.
    stream_.expires_after(server_.timeouts.write);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec || !keep_alive) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  AdminServer::Impl& server_;
  int requests_ = 0;
};

}  // namespace

void AdminServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) {
      if (connections.load() >= kMaxConnections) {
        beast::error_code ignored;
        socket.close(ignored);  // over the limit: refuse rather than queue
      } else {
        ++connections;
        std::make_shared<Session>(std::move(socket), *this)->read();
      }
    }
    accept();
  });
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { stop(); }

Result<std::unique_ptr<AdminServer>> AdminServer::start(const std::string& listen,
                                                        std::string token, AdminHandlers handlers,
                                                        AdminTimeouts timeouts) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return Status::error("admin.listen: expected host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    return Status::error("admin.listen: bad port in '" + listen + "'");
  }
  auto impl = std::make_unique<Impl>();
  impl->token = std::move(token);
  impl->handlers = std::move(handlers);
  impl->timeouts = timeouts;
  beast::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (ec) return Status::error("admin.listen: bad address '" + host + "': " + ec.message());
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::error("admin.listen: cannot listen on " + listen + ": " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  impl->accept();
  auto* raw = impl.get();
  impl->thread = std::thread([raw] {
    name_this_thread("sluice-admin");
    raw->ioc.run();
  });
  raw->address = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                 std::to_string(raw->port);
  logger("admin")->info("admin endpoint on {}{}", raw->address,
                        raw->token.empty() ? " (no token: loopback use only)" : "");
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

int AdminServer::port() const { return impl_->port; }
const std::string& AdminServer::address() const { return impl_->address; }

void AdminServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->ioc.stop();
  impl_->blocking.join();  // a pause in progress returns first (the pipeline answers it)
  impl_->thread.join();
}

}  // namespace sluice::admin
