#include "admin/admin_router.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <nlohmann/json.hpp>

namespace sluice::admin {

namespace http = boost::beast::http;

std::string error_json(const std::string& message) {
  // Paths and methods come from the client: keep them valid in the JSON (replace bytes that
  // are not UTF-8) rather than let the dump throw.
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace);
}

Routed route_request(const AdminRequest& req, const std::string& token,
                     const AdminHandlers& handlers) {
  auto answer = [](unsigned status, std::string body,
                   std::string content_type = "application/json") {
    Routed r;
    r.reply = {status, std::move(body), std::move(content_type)};
    return r;
  };
  std::string_view target(req.target().data(), req.target().size());
  target = target.substr(0, target.find('?'));
  const auto method = req.method();
  std::optional<Routed> wrong_method;
  auto only = [&](http::verb allowed) {
    if (method == allowed) return true;
    const char* allow = allowed == http::verb::get ? "GET" : "POST";
    wrong_method =
        answer(405, error_json("method " + std::string(req.method_string()) + " not allowed on " +
                               std::string(target) + "; use " + allow));
    wrong_method->reply.allow = allow;
    return false;
  };
  if (target == "/healthz") {
    return only(http::verb::get) ? answer(200, R"({"status":"ok"})") : *wrong_method;
  }
  if (target == "/metrics") {
    if (!only(http::verb::get)) return *wrong_method;
    if (!handlers.metrics_text) return answer(501, error_json("not available in this process"));
    return answer(200, handlers.metrics_text(), "text/plain; version=0.0.4");
  }
  if (!target.starts_with("/v1/") && target != "/v1") {
    return answer(404, error_json("no such endpoint: " + std::string(target)));
  }
  if (!token.empty()) {
    const auto auth = req[http::field::authorization];
    if (!constant_time_equal(std::string(auth), "Bearer " + token)) {
      return answer(401, error_json("missing or wrong bearer token"));
    }
  }
  if (target == "/v1/status") {
    if (!only(http::verb::get)) return *wrong_method;
    if (!handlers.status_json) return answer(501, error_json("not available in this process"));
    return answer(200, handlers.status_json());
  }
  if (target == "/v1/spool") {
    if (!only(http::verb::get)) return *wrong_method;
    if (!handlers.spool_json) return answer(501, error_json("not available in this process"));
    return answer(200, handlers.spool_json());
  }
  if (target == "/v1/pause" || target == "/v1/resume") {
    if (!only(http::verb::post)) return *wrong_method;
    std::string reason;
    bool local = false;
    if (!req.body().empty()) {
      const auto body = nlohmann::json::parse(req.body(), nullptr, false);
      if (body.is_discarded() || !body.is_object()) {
        return answer(400, error_json("the body must be a JSON object"));
      }
      if (body.contains("reason") && !body["reason"].is_string()) {
        return answer(400, error_json("'reason' must be a string"));
      }
      if (body.contains("local") && !body["local"].is_boolean()) {
        return answer(400, error_json("'local' must be true or false"));
      }
      reason = body.value("reason", "");
      local = body.value("local", false);
    }
    const bool is_pause = target == "/v1/pause";
    if (is_pause ? !handlers.pause : !handlers.resume) {
      return answer(501, error_json("not available in this process"));
    }
    Routed r;
    r.kind = is_pause ? Routed::Kind::kPause : Routed::Kind::kResume;
    r.reason = std::move(reason);
    r.local = local && is_pause;
    return r;
  }
  return answer(404, error_json("no such endpoint: " + std::string(target)));
}

std::optional<AdminReply> reply_for_read_error(const boost::beast::error_code& ec) {
  if (ec == http::error::body_limit) return AdminReply{413, error_json("request body too large")};
  if (ec == http::error::header_limit) {
    return AdminReply{431, error_json("request headers too large")};
  }
  // A parse error of Beast's own category is the client's fault: say so. End of stream,
  // timeouts and resets have nobody to answer.
  const auto& parse_errors = boost::beast::error_code(http::error::bad_method).category();
  if (ec && ec.category() == parse_errors && ec != http::error::end_of_stream &&
      ec != http::error::partial_message) {
    return AdminReply{400, error_json("malformed HTTP request: " + ec.message())};
  }
  return std::nullopt;
}

Routed route_bytes(std::string_view bytes, const std::string& token,
                   const AdminHandlers& handlers) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kBodyLimit);
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = 0;
  while (used < bytes.size() && !parser.is_done()) {
    const size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) break;
    if (n == 0) break;
    used += n;
  }
  // End of input: what an end of stream means to a request that has begun (a body that runs
  // to the end, or a request cut short). Nothing received is no request at all.
  if (!ec && !parser.is_done() && parser.got_some()) parser.put_eof(ec);
  Routed none;
  none.kind = Routed::Kind::kNone;
  if (ec) {
    if (auto reply = reply_for_read_error(ec)) {
      Routed r;
      r.reply = std::move(*reply);
      return r;
    }
    return none;
  }
  if (!parser.is_done()) return none;
  return route_request(parser.get(), token, handlers);
}

}  // namespace sluice::admin
