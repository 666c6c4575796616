#pragma once
/// A small synchronous HTTP/1.1 client for the CLI commands that talk to a running service
/// (`sluice status`, later pause/resume). Plain HTTP to the admin endpoint only.

#include <string>

#include "common/status.h"

namespace sluice::admin {

struct HttpReply {
  int status = 0;
  std::string body;
};

/// `url`: "http://host:port" (the path is appended). `token` empty: no Authorization header.
Result<HttpReply> http_request(const std::string& url, const std::string& method,
                               const std::string& path, const std::string& body,
                               const std::string& token, int timeout_ms = 10000);

}  // namespace sluice::admin
