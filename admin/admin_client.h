#pragma once
/// A small synchronous HTTP/1.1 client for the CLI commands that talk to a running service
/// (`sluice status`, `pause`, `resume`, `spool inspect`): plain HTTP to the admin endpoint, or
/// HTTPS to a TLS proxy in front of it (the server's certificate checked against the system's
/// CAs, or the file named by SSL_CERT_FILE, and its name against the URL's host).

#include <string>

#include "common/status.h"

namespace sluice::admin {

struct HttpReply {
  int status = 0;
  std::string body;
};

/// An admin endpoint: "http://HOST:PORT", "https://HOST:PORT", or "HOST:PORT" as admin.listen
/// spells it (http). HOST is a name, an IPv4 address or a bracketed IPv6 one ("[::1]"); an
/// unspecified address (0.0.0.0, [::]) means this host's loopback. A path after the port is
/// refused (the commands add their own).
struct AdminUrl {
  bool tls = false;
  std::string host;  ///< without brackets
  std::string port;
};
Result<AdminUrl> parse_admin_url(const std::string& url);

/// The request. A failure is ErrorKind::kTimeout when the request was sent and its answer did
/// not come within `timeout_ms`, kError when the endpoint could not be reached (connecting
/// and the TLS handshake included) or spoke no HTTP.
Result<HttpReply> http_request(const std::string& url, const std::string& method,
                               const std::string& path, const std::string& body,
                               const std::string& token, int timeout_ms = 10000);

}  // namespace sluice::admin
