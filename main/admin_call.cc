#include "main/admin_call.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "admin/admin_client.h"
#include "admin/admin_server.h"

namespace sluice::cli {

void add_admin_options(CLI::App* cmd, AdminOptions& o) {
  cmd->add_option("--admin", o.url, "Admin endpoint of the running service")->capture_default_str();
  cmd->add_option("--token-file", o.token_file, "File holding the admin bearer token");
  cmd->add_flag("--json", o.json, "Print the JSON answer as it is");
}

int admin_call(const AdminOptions& o, const std::string& method, const std::string& path,
               const std::string& body, std::string& out) {
  std::string token;
  if (!o.token_file.empty()) {
    auto t = sluice::admin::read_token_file(o.token_file);
    if (!t) {
      std::cerr << "sluice: " << t.status().message() << "\n";
      return 2;
    }
    token = std::move(t).value();
  }
  auto reply = sluice::admin::http_request(o.url, method, path, body, token, 90'000);
  if (!reply) {
    std::cerr << "sluice: " << reply.status().message() << "\n";
    return 3;
  }
  if (reply->status != 200) {
    const auto body = nlohmann::json::parse(reply->body, nullptr, false);
    std::cerr << "sluice: the service refused: HTTP " << reply->status << ": "
              << (body.is_object() && body.contains("error") ? body["error"].get<std::string>()
                                                             : reply->body)
              << "\n";
    return 4;
  }
  out = reply->body;
  return 0;
}

}  // namespace sluice::cli
