#pragma once
/// The admin endpoint's request handling without sockets: what a request read from a
/// connection gets — an answer now, or a pause/resume whose answer comes when the pipeline is
/// done. AdminServer (admin_server.h) reads requests and writes answers around it; the fuzz
/// target and the unit tests drive it directly with bytes.
/// Thread safety: pure functions of their arguments (the handlers they call must be safe to
/// call from the server's thread).

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "admin/admin_server.h"

namespace sluice::admin {

/// Limits of one request: headers (431 beyond), body (413 beyond).
inline constexpr size_t kHeaderLimit = 8 * 1024;
inline constexpr size_t kBodyLimit = 64 * 1024;

struct AdminReply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string allow{};  ///< for 405: the method the path takes
};

/// What a request asks for.
struct Routed {
  enum class Kind {
    kReply,   ///< `reply` at once
    kPause,   ///< run the pause handler with `reason`, then answer
    kResume,  ///< run the resume handler, then answer
    kNone,    ///< nothing to answer (the connection ended, or the request is incomplete)
  };
  Kind kind = Kind::kReply;
  AdminReply reply{};
  std::string reason{};
  bool local = false;  ///< a pause of this instance alone
};

using AdminRequest = boost::beast::http::request<boost::beast::http::string_body>;

/// Routes a complete request: the bearer token for /v1 (constant-time compare), the path, the
/// method (405 names the right one), the pause body (a JSON object with an optional string
/// `reason` and an optional boolean `local`); 404 for anything else. Handlers left unset answer
/// 501.
Routed route_request(const AdminRequest& request, const std::string& token,
                     const AdminHandlers& handlers);

/// The answer to a request that could not be read: 413 (body too large), 431 (headers too
/// large), 400 (not HTTP); nullopt when there is nobody to answer (end of stream, a timeout,
/// a reset).
std::optional<AdminReply> reply_for_read_error(const boost::beast::error_code& ec);

/// Parses `bytes` as one request, with the server's limits, and routes it; kNone when the
/// bytes end before a request is complete. For the fuzz target and tests.
Routed route_bytes(std::string_view bytes, const std::string& token, const AdminHandlers& handlers);

/// `{"error": message}`.
std::string error_json(const std::string& message);

}  // namespace sluice::admin
