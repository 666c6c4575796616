#pragma once
/// The CLI's side of the admin API: the options every client command shares, where the endpoint
/// and token come from, and one call with the exit-code convention.
///
/// The endpoint and token, first found wins:
///   --admin URL / --token-file F;  SLUICE_ADMIN / SLUICE_TOKEN_FILE;
///   the config's admin.listen / admin.token_file, the config being --config FILE, else
///   SLUICE_CONFIG, else /etc/sluice/sluice.yaml when it exists and no endpoint was named;
///   http://127.0.0.1:8470 and no token.

#include <CLI/CLI.hpp>
#include <string>

namespace sluice::cli {

/// Exit codes of the commands that talk to a running service.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 2;         ///< bad option, config or token file
inline constexpr int kExitUnreachable = 3;   ///< nothing answers at the endpoint
inline constexpr int kExitRefused = 4;       ///< the service said no (HTTP 4xx/5xx)
inline constexpr int kExitUnauthorized = 5;  ///< HTTP 401/403: the token is missing or wrong
inline constexpr int kExitTimedOut = 6;      ///< asked, but not done in time (it may still be)

/// The installed config, read when nothing else names the endpoint.
inline constexpr const char* kDefaultConfig = "/etc/sluice/sluice.yaml";

struct AdminOptions {
  std::string url;  ///< empty: see above
  std::string token_file;
  std::string config_path;
  bool json = false;
};

/// --admin, --token-file, --json, and --config unless the command has a --config of its own.
void add_admin_options(CLI::App* cmd, AdminOptions& o, bool with_config = true);

/// Where to call and with which token file, from the options, the environment and the config.
/// On failure the exit code (kExitUsage) and a message on stderr.
struct AdminTarget {
  std::string url;
  std::string token_file;
};
int resolve_admin(const AdminOptions& o, AdminTarget& out);

/// Calls the admin API; returns the exit code and, on success, the body in `out`.
int admin_call(const AdminOptions& o, const std::string& method, const std::string& path,
               const std::string& body, std::string& out);

}  // namespace sluice::cli
