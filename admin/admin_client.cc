// Boost 1.74 turns its C++20 coroutine support (awaitable, co_spawn) on for GCC only; clang
// (the sanitizer builds) compiles it as well. Only those headers look at this: nothing else
// of Asio changes, so this file and the others agree on every type they share.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif

#include "admin/admin_client.h"

#include <openssl/ssl.h>

#include <optional>
#include <stdexcept>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace sluice::admin {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

Result<AdminUrl> parse_admin_url(const std::string& url) {
  auto bad = [&url](const std::string& why) {
    return Status::error("admin endpoint '" + url + "': " + why +
                         " (expected http://HOST:PORT or https://HOST:PORT, e.g. "
                         "http://127.0.0.1:8470 or http://[::1]:8470)");
  };
  AdminUrl out;
  std::string rest = url;
  if (rest.starts_with("https://")) {
    out.tls = true;
    rest = rest.substr(8);
  } else if (rest.starts_with("http://")) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return bad("unknown scheme");
  }
  if (rest.ends_with("/")) rest.pop_back();
  if (rest.find('/') != std::string::npos) return bad("no path after the port");
  std::string::size_type colon;
  if (rest.starts_with("[")) {
    const auto close = rest.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    out.host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') return bad("no port");
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string::npos) return bad("no port");
    out.host = rest.substr(0, colon);
    if (out.host.find(':') != std::string::npos) return bad("an IPv6 address needs brackets");
  }
  out.port = rest.substr(colon + 1);
  if (out.host.empty()) return bad("no host");
  if (out.port.empty() || out.port.size() > 5 ||
      out.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(out.port) < 1 ||
      std::stoi(out.port) > 65535) {
    return bad("the port must be 1-65535");
  }
  if (out.host == "0.0.0.0") out.host = "127.0.0.1";
  if (out.host == "::") out.host = "::1";
  return out;
}

namespace {

/// One request and its answer over a connected stream (plain or TLS).
template <typename Stream>
net::awaitable<HttpReply> exchange(Stream& stream, const AdminUrl& u, const std::string& method,
                                   const std::string& path, const std::string& body,
                                   const std::string& token, bool& sent) {
  http::request<http::string_body> req(http::string_to_verb(method), path, 11);
  req.set(http::field::host,
          (u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host) + ":" + u.port);
  req.set(http::field::user_agent, "sluice-cli");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  co_await http::async_write(stream, req, net::use_awaitable);
  sent = true;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  co_await http::async_read(stream, buffer, parser, net::use_awaitable);
  co_return HttpReply{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

/// The whole request under one deadline. Asynchronous because Beast's stream deadlines bind
/// only asynchronous operations: a synchronous read from an endpoint that never answers would
/// wait for ever.
/// `sent` turns true once the request is written: a deadline missed before that means nothing
/// was asked (unreachable), after it that the answer did not come (it may still be acted on).
net::awaitable<HttpReply> request(AdminUrl u, std::string method, std::string path,
                                  std::string body, std::string token,
                                  std::chrono::milliseconds timeout, bool& sent) {
  auto executor = co_await net::this_coro::executor;
  tcp::resolver resolver(executor);
  const auto endpoints = co_await resolver.async_resolve(u.host, u.port, net::use_awaitable);
  if (!u.tls) {
    beast::tcp_stream stream(executor);
    stream.expires_after(timeout);
    co_await stream.async_connect(endpoints, net::use_awaitable);
    auto reply = co_await exchange(stream, u, method, path, body, token, sent);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    co_return reply;
  }
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_default_verify_paths();  // the system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR
  ctx.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(executor, ctx);
  boost::system::error_code not_an_address;
  net::ip::make_address(u.host, not_an_address);
  if (not_an_address && !SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str())) {
    throw std::runtime_error("cannot set the TLS server name " + u.host);
  }
  stream.set_verify_callback(ssl::host_name_verification(u.host));
  beast::get_lowest_layer(stream).expires_after(timeout);
  co_await beast::get_lowest_layer(stream).async_connect(endpoints, net::use_awaitable);
  co_await stream.async_handshake(ssl::stream_base::client, net::use_awaitable);
  auto reply = co_await exchange(stream, u, method, path, body, token, sent);
  // The peer may just close rather than answer the close_notify: not the request's failure.
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
  beast::error_code ec;
  co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
  co_return reply;
}

}  // namespace

Result<HttpReply> http_request(const std::string& url, const std::string& method,
                               const std::string& path, const std::string& body,
                               const std::string& token, int timeout_ms) {
  auto u = parse_admin_url(url);
  if (!u) return u.status();
  net::io_context ioc;
  std::optional<HttpReply> reply;
  std::exception_ptr failure;
  bool sent = false;
  net::co_spawn(ioc,
                request(*u, method, path, body, token, std::chrono::milliseconds(timeout_ms),
                        sent),
                [&](std::exception_ptr e, HttpReply r) {
                  if (e) {
                    failure = e;
                  } else {
                    reply = std::move(r);
                  }
                });
  ioc.run();
  if (reply) return *std::move(reply);
  if (!failure) return Status::error("cannot reach the admin endpoint at " + url);
  try {
    std::rethrow_exception(failure);
  } catch (const boost::system::system_error& e) {
    if (e.code() == beast::error::timeout && sent) {
      return Status::error("the admin endpoint at " + url + " did not answer within " +
                               std::to_string(timeout_ms / 1000) + " s",
                           ErrorKind::kTimeout);
    }
    if (e.code() == beast::error::timeout) {
      return Status::error("cannot reach the admin endpoint at " + url + ": no connection within " +
                           std::to_string(timeout_ms / 1000) + " s");
    }
    return Status::error("cannot reach the admin endpoint at " + url + ": " + e.what());
  } catch (const std::exception& e) {
    return Status::error("cannot reach the admin endpoint at " + url + ": " + e.what());
  }
}

}  // namespace sluice::admin
