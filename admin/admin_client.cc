#include "admin/admin_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace sluice::admin {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

Result<HttpReply> http_request(const std::string& url, const std::string& method,
                               const std::string& path, const std::string& body,
                               const std::string& token, int timeout_ms) {
  std::string rest = url;
  if (rest.starts_with("http://")) rest = rest.substr(7);
  if (rest.ends_with("/")) rest.pop_back();
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.starts_with("https")) {
    return Status::error("--admin: expected http://HOST:PORT, got '" + url + "'");
  }
  const std::string host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    stream.connect(resolver.resolve(host, port));
    http::request<http::string_body> req(http::string_to_verb(method), path, 11);
    req.set(http::field::host, host);
    req.set(http::field::user_agent, "sluice-cli");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    return HttpReply{static_cast<int>(res.result_int()), res.body()};
  } catch (const std::exception& e) {
    return Status::error("cannot reach the admin endpoint at " + url + ": " + e.what());
  }
}

}  // namespace sluice::admin
