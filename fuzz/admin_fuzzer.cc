// The admin endpoint's request handling without sockets: any bytes a client may send, parsed
// with the server's limits and routed. Checks, beyond not crashing: every answer is a known
// status, and an error's body is JSON.

#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "admin/admin_router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sluice::admin::Routed;
  static const sluice::admin::AdminHandlers handlers{
      .status_json = [] { return std::string(R"({"state":"running"})"); },
      .spool_json = [] { return std::string(R"({"events":0})"); },
      .metrics_text = [] { return std::string("sluice_up 1\n"); },
      .pause = [](const std::string& r, bool) -> sluice::Result<std::string> { return r; },
      .resume = []() -> sluice::Result<std::string> { return std::string(); }};
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const Routed r = sluice::admin::route_bytes(bytes, "fuzz-token", handlers);
  if (r.kind != Routed::Kind::kReply) return 0;
  switch (r.reply.status) {
    case 200:
      return 0;
    case 400:
    case 401:
    case 404:
    case 405:
    case 413:
    case 431:
    case 501:
      break;
    default:
      std::abort();
  }
  const auto body = nlohmann::json::parse(r.reply.body, nullptr, false);
  if (!body.is_object() || !body.contains("error")) std::abort();
  return 0;
}
