#include "cli/admin_call.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "admin/admin_client.h"
#include "admin/admin_server.h"
#include "common/config.h"

namespace sluice::cli {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

void add_admin_options(CLI::App* cmd, AdminOptions& o, bool with_config) {
  if (with_config) {
    cmd->add_option("--config,-c", o.config_path,
                    "Config file whose admin.listen and admin.token_file to use (default: "
                    "$SLUICE_CONFIG, else /etc/sluice/sluice.yaml when it exists)");
  }
  cmd->add_option("--admin", o.url,
                  "Admin endpoint, http(s)://HOST:PORT (default: $SLUICE_ADMIN, else the "
                  "config's admin.listen, else http://127.0.0.1:8470)");
  cmd->add_option("--token-file", o.token_file,
                  "File holding the admin bearer token (default: $SLUICE_TOKEN_FILE, else the "
                  "config's admin.token_file)");
  cmd->add_flag("--json", o.json, "Print the JSON answer as it is");
}

int resolve_admin(const AdminOptions& o, AdminTarget& out) {
  out.url = !o.url.empty() ? o.url : env("SLUICE_ADMIN");
  out.token_file = !o.token_file.empty() ? o.token_file : env("SLUICE_TOKEN_FILE");
  std::string config = !o.config_path.empty() ? o.config_path : env("SLUICE_CONFIG");
  // The installed config is only a default: used when nothing named an endpoint, and when it
  // is there at all (a host without the package has none).
  if (config.empty() && out.url.empty() && access(kDefaultConfig, F_OK) == 0) {
    config = kDefaultConfig;
  }
  if (!config.empty() && (out.url.empty() || out.token_file.empty())) {
    auto c = load_config(config);
    if (!c) {
      std::cerr << "sluice: " << c.status().message() << "\n";
      return kExitUsage;
    }
    if (out.url.empty()) {
      if (c->admin.listen.empty()) {
        std::cerr << "sluice: " << config
                  << ": admin.listen is empty: the admin endpoint is off, so there is nothing "
                     "to ask (set it, or name one with --admin)\n";
        return kExitUsage;
      }
      out.url = "http://" + c->admin.listen;
    }
    if (out.token_file.empty()) out.token_file = c->admin.token_file;
  }
  if (out.url.empty()) out.url = "http://127.0.0.1:8470";
  if (auto u = admin::parse_admin_url(out.url); !u) {
    std::cerr << "sluice: " << u.status().message() << "\n";
    return kExitUsage;
  }
  return kExitOk;
}

int admin_call(const AdminOptions& o, const std::string& method, const std::string& path,
               const std::string& body, std::string& out) {
  AdminTarget target;
  if (const int code = resolve_admin(o, target)) return code;
  std::string token;
  if (!target.token_file.empty()) {
    auto t = admin::read_token_file(target.token_file);
    if (!t) {
      std::cerr << "sluice: " << t.status().message() << "\n";
      return kExitUsage;
    }
    token = std::move(t).value();
  }
  auto reply = admin::http_request(target.url, method, path, body, token, 90'000);
  if (!reply) {
    std::cerr << "sluice: " << reply.status().message() << "\n";
    return reply.status().kind() == ErrorKind::kTimeout ? kExitTimedOut : kExitUnreachable;
  }
  if (reply->status != 200) {
    const auto answer = nlohmann::json::parse(reply->body, nullptr, false);
    const std::string error =
        answer.is_object() && answer.contains("error") && answer["error"].is_string()
            ? answer["error"].get<std::string>()
            : reply->body;
    if (reply->status == 401 || reply->status == 403) {
      std::cerr << "sluice: not authorized: HTTP " << reply->status << ": " << error
                << (token.empty() ? " (no token was sent: --config, --token-file or "
                                    "SLUICE_TOKEN_FILE names the file holding it)"
                                  : " (the token sent is not the service's admin.token_file)")
                << "\n";
      return kExitUnauthorized;
    }
    if (reply->status == 504) {
      std::cerr << "sluice: not done in time: HTTP 504: " << error << "\n";
      return kExitTimedOut;
    }
    std::cerr << "sluice: the service refused: HTTP " << reply->status << ": " << error << "\n";
    return kExitRefused;
  }
  out = reply->body;
  return kExitOk;
}

}  // namespace sluice::cli
