#include "admin/admin_client.h"

#include <openssl/ssl.h>


#include <boost/asio.hpp>
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

/// One request and its answer, as a chain of asynchronous operations on a stream (plain TCP or
/// TLS) under one deadline — asynchronous because Beast's stream deadlines bind only
/// asynchronous operations: a synchronous read from an endpoint that never answers would wait
/// for ever. (Callbacks rather than C++20 coroutines: clang 14 cannot compile Asio's
/// coroutines with the sanitizers' debug info.)
template <typename Stream>
struct Exchange {
  Exchange(Stream& s, http::request<http::string_body> r) : stream(s), request(std::move(r)) {
    parser.body_limit(64 * 1024 * 1024);
  }

  Stream& stream;
  http::request<http::string_body> request;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  bool sent = false;  ///< the request is written: a deadline missed now is a late answer
  beast::error_code error;
  bool done = false;

  void write() {
    http::async_write(stream, request, [this](beast::error_code ec, size_t) {
      if (ec) return finish(ec);
      sent = true;
      http::async_read(stream, buffer, parser,
                       [this](beast::error_code ec2, size_t) { finish(ec2); });
    });
  }
  void finish(beast::error_code ec) {
    error = ec;
    done = true;
  }
};

http::request<http::string_body> make_request(const AdminUrl& u, const std::string& method,
                                              const std::string& path, const std::string& body,
                                              const std::string& token) {
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
  return req;
}

}  // namespace

Result<HttpReply> http_request(const std::string& url, const std::string& method,
                               const std::string& path, const std::string& body,
                               const std::string& token, int timeout_ms) {
  auto u = parse_admin_url(url);
  if (!u) return u.status();
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  auto unreachable = [&url](const std::string& why) {
    return Status::error("cannot reach the admin endpoint at " + url + ": " + why);
  };
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(u->host, u->port);
    auto outcome = [&](auto& ex) -> Result<HttpReply> {
      if (!ex.error) {
        return HttpReply{static_cast<int>(ex.parser.get().result_int()), ex.parser.get().body()};
      }
      if (ex.error == beast::error::timeout && ex.sent) {
        return Status::error("the admin endpoint at " + url + " did not answer within " +
                                 std::to_string(timeout_ms / 1000) + " s",
                             ErrorKind::kTimeout);
      }
      if (ex.error == beast::error::timeout) {
        return unreachable("no connection within " + std::to_string(timeout_ms / 1000) + " s");
      }
      return unreachable(ex.error.message());
    };
    if (!u->tls) {
      beast::tcp_stream stream(ioc);
      Exchange<beast::tcp_stream> ex(stream, make_request(*u, method, path, body, token));
      stream.expires_after(timeout);
      stream.async_connect(endpoints, [&ex](beast::error_code ec, const tcp::endpoint&) {
        if (ec) return ex.finish(ec);
        ex.write();
      });
      ioc.run();
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return outcome(ex);
    }
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_default_verify_paths();  // the system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    boost::system::error_code not_an_address;
    net::ip::make_address(u->host, not_an_address);
    // A name is sent as SNI; it, or the address, is checked against the certificate.
    if (not_an_address && !SSL_set_tlsext_host_name(stream.native_handle(), u->host.c_str())) {
      return unreachable("cannot set the TLS server name " + u->host);
    }
    stream.set_verify_callback(ssl::host_name_verification(u->host));
    Exchange<beast::ssl_stream<beast::tcp_stream>> ex(
        stream, make_request(*u, method, path, body, token));
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::get_lowest_layer(stream).async_connect(
        endpoints, [&ex, &stream](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return ex.finish(ec);
          stream.async_handshake(ssl::stream_base::client, [&ex](beast::error_code ec2) {
            if (ec2) return ex.finish(ec2);
            ex.write();
          });
        });
    ioc.run();
    if (!ex.error) {
      // The peer may just close rather than answer the close_notify: not the request's failure.
      ioc.restart();
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
      stream.async_shutdown([](beast::error_code) {});
      ioc.run();
    }
    return outcome(ex);
  } catch (const std::exception& e) {
    return unreachable(e.what());
  }
}

}  // namespace sluice::admin
