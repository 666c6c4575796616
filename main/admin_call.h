#pragma once
/// The CLI's side of the admin API: the options every client command shares and one call with
/// the exit-code convention (2 bad token file, 3 unreachable, 4 refused).

#include <CLI/CLI.hpp>
#include <string>

namespace sluice::cli {

struct AdminOptions {
  std::string url = "http://127.0.0.1:8470";
  std::string token_file;
  bool json = false;
};

void add_admin_options(CLI::App* cmd, AdminOptions& o);

/// Calls the admin API; returns the exit code and, on success, the body in `out`.
int admin_call(const AdminOptions& o, const std::string& method, const std::string& path,
               const std::string& body, std::string& out);

}  // namespace sluice::cli
