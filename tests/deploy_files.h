#pragma once
// Reads what deploy/ ships for monitoring — the Grafana dashboard and the Prometheus alert
// rules — as the expressions they evaluate and the Sluice metric names those use. Shared by
// tests/unit/deploy_test.cc (promtool on every expression) and tests/integration/deploy_test.cc
// (every name against a live /metrics).

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "testing/harness.h"

namespace sluice::testing {

inline std::string dashboard_path() {
  return source_dir() + "/deploy/grafana/sluice-dashboard.json";
}
inline std::string rules_path() { return source_dir() + "/deploy/prometheus/sluice-alerts.yml"; }
inline std::string rules_test_path() {
  return source_dir() + "/deploy/prometheus/sluice-alerts.test.yml";
}

inline nlohmann::json read_dashboard() {
  std::ifstream in(dashboard_path());
  return nlohmann::json::parse(in);  // throws, failing the test, when the file is not JSON
}

/// Every panel of the dashboard, rows' nested panels included.
inline std::vector<nlohmann::json> dashboard_panels(const nlohmann::json& dashboard) {
  std::vector<nlohmann::json> out;
  for (const auto& p : dashboard.at("panels")) {
    out.push_back(p);
    if (p.contains("panels")) {
      for (const auto& nested : p["panels"]) out.push_back(nested);
    }
  }
  return out;
}

/// The PromQL of every panel target, with Grafana's variables replaced by what Prometheus
/// accepts ($__rate_interval and friends by a range, any other $variable by ".*").
inline std::vector<std::string> dashboard_exprs() {
  std::vector<std::string> out;
  for (const auto& p : dashboard_panels(read_dashboard())) {
    if (!p.contains("targets")) continue;
    for (const auto& t : p["targets"]) {
      std::string e = t.at("expr").get<std::string>();
      e = std::regex_replace(e, std::regex(R"(\$__(rate_interval|interval|range))"), "5m");
      e = std::regex_replace(e, std::regex(R"(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)"), ".*");
      out.push_back(e);
    }
  }
  return out;
}

struct AlertRule {
  std::string name;
  std::string expr;
  YAML::Node node;
};

inline std::vector<AlertRule> alert_rules() {
  std::vector<AlertRule> out;
  const auto root = YAML::LoadFile(rules_path());
  for (const auto& group : root["groups"]) {
    for (const auto& rule : group["rules"]) {
      out.push_back({rule["alert"].as<std::string>(), rule["expr"].as<std::string>(), rule});
    }
  }
  return out;
}

/// The Sluice metric names (sluice_...) an expression reads; quoted label values are not names.
inline std::set<std::string> metric_names(const std::string& expr) {
  const std::string unquoted = std::regex_replace(expr, std::regex(R"("([^"\\]|\\.)*")"), "\"\"");
  std::set<std::string> out;
  static const std::regex name(R"(\bsluice_[A-Za-z0-9_]+)");
  for (auto it = std::sregex_iterator(unquoted.begin(), unquoted.end(), name);
       it != std::sregex_iterator(); ++it) {
    out.insert(it->str());
  }
  return out;
}

}  // namespace sluice::testing
