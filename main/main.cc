// The `sluice` command: parses the command line and wires the components together.

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <iostream>

#include "common/config.h"
#include "common/logging.h"
#include "ingest/pipeline.h"
#include "ingest/schema.h"
#include "storage/mariadb_sink.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int /*sig*/) { g_stop.store(true); }

int check_config(const std::string& path) {
  auto config = sluice::load_config(path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  sluice::ingest::SchemaRegistry registry(config->schemas_path);
  auto schemas = registry.load_all();
  if (!schemas) {
    std::cerr << "sluice: invalid configuration: " << path
              << ": schemas.path: " << schemas.status().message() << "\n";
    return 2;
  }
  std::cout << path << ": ok (" << config->kafka.topics.size() << " topic(s), " << *schemas
            << " schema revision(s) in " << config->schemas_path << ")\n";
  return 0;
}

int run(const std::string& path) {
  auto config = sluice::load_config(path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  sluice::configure_logging(config->log.level, config->log.json);
  auto log = sluice::logger("main");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const auto mariadb = config->mariadb;
  const auto group = config->kafka.group_id;
  sluice::ingest::Pipeline pipeline(std::move(config).value(), [mariadb, group] {
    return std::make_unique<sluice::storage::MariaDbSink>(mariadb, group);
  });
  log->info("sluice starting (config {})", path);
  if (auto st = pipeline.run(g_stop); !st) {
    log->critical("{}", st.message());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sluice: Kafka event-logging streams into MariaDB, exactly once"};
  app.require_subcommand(1);
  std::string config_path;

  auto* run_cmd = app.add_subcommand("run", "Run the service in the foreground");
  run_cmd->add_option("--config,-c", config_path, "Config file (YAML)")->required();
  auto* check_cmd = app.add_subcommand("check-config", "Validate a config file and its schemas");
  check_cmd->add_option("--config,-c", config_path, "Config file (YAML)")->required();
  app.add_subcommand("version", "Print the version")->callback([] {
    std::cout << "sluice 0.1.0\n";
  });

  CLI11_PARSE(app, argc, argv);
  if (run_cmd->parsed()) return run(config_path);
  if (check_cmd->parsed()) return check_config(config_path);
  return 0;
}
