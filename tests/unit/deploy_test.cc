// The monitoring that deploy/ ships, checked without a server: the alert rules with promtool
// (syntax, and their unit tests on synthetic series), every dashboard query as PromQL, and the
// dashboard's shape. tests/integration/deploy_test.cc checks the metric names against a live
// /metrics. promtool comes from Debian's `prometheus` package (scripts/install-deps).

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <set>

#include "testing/harness.h"
#include "tests/deploy_files.h"

namespace sluice::testing {
namespace {

/// Runs promtool; its exit code, and its output in `out`.
int promtool(const std::vector<std::string>& args, std::string& out) {
  std::vector<std::string> argv = {"promtool"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, out);
}

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string out;
    ASSERT_EQ(promtool({"--version"}, out), 0)
        << "promtool not found: apt-get install prometheus (scripts/install-deps does)\n"
        << out;
  }
};

TEST_F(DeployTest, AlertRulesPassPromtoolCheck) {
  std::string out;
  EXPECT_EQ(promtool({"check", "rules", rules_path()}, out), 0) << out;
  EXPECT_NE(out.find("SUCCESS: " + std::to_string(alert_rules().size()) + " rules found"),
            std::string::npos)
      << out;
}

TEST_F(DeployTest, AlertRulesPassTheirUnitTestsOnSyntheticSeries) {
  std::string out;
  EXPECT_EQ(promtool({"test", "rules", rules_test_path()}, out), 0) << out;
  EXPECT_NE(out.find("SUCCESS"), std::string::npos) << out;
}

TEST_F(DeployTest, EveryAlertHasASeverityASummaryAndATestWhereItFires) {
  std::set<std::string> fired;
  const auto tests = YAML::LoadFile(rules_test_path());
  for (const auto& t : tests["tests"]) {
    for (const auto& check : t["alert_rule_test"]) {
      if (check["exp_alerts"].size() > 0) fired.insert(check["alertname"].as<std::string>());
    }
  }
  const auto rules = alert_rules();
  ASSERT_GE(rules.size(), 10u);
  for (const auto& r : rules) {
    const auto severity = r.node["labels"]["severity"].as<std::string>("");
    EXPECT_TRUE(severity == "critical" || severity == "warning") << r.name << ": " << severity;
    EXPECT_FALSE(r.node["annotations"]["summary"].as<std::string>("").empty()) << r.name;
    EXPECT_FALSE(r.node["annotations"]["description"].as<std::string>("").empty()) << r.name;
    EXPECT_TRUE(fired.contains(r.name)) << r.name << " has no test in which it fires";
  }
}

TEST_F(DeployTest, EveryDashboardQueryIsValidPromQL) {
  // promtool checks PromQL only inside rule files: each panel query becomes a recording rule.
  TempDir dir;
  const auto exprs = dashboard_exprs();
  ASSERT_GE(exprs.size(), 20u);
  const std::string file = dir.file("dashboard-queries.yml");
  {
    YAML::Emitter y;
    y << YAML::BeginMap << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
    y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "dashboard";
    y << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
    for (size_t i = 0; i < exprs.size(); ++i) {
      y << YAML::BeginMap << YAML::Key << "record" << YAML::Value
        << "dashboard:query_" + std::to_string(i) << YAML::Key << "expr" << YAML::Value << exprs[i]
        << YAML::EndMap;
    }
    y << YAML::EndSeq << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
    std::ofstream(file) << y.c_str();
  }
  std::string out;
  EXPECT_EQ(promtool({"check", "rules", file}, out), 0) << out;
  EXPECT_NE(out.find("SUCCESS: " + std::to_string(exprs.size()) + " rules found"),
            std::string::npos)
      << out;
}

TEST_F(DeployTest, DashboardPanelsAreDescribedPlacedAndUniquelyNumbered) {
  const auto dashboard = read_dashboard();
  EXPECT_EQ(dashboard.at("uid"), "sluice");
  std::set<int> ids;
  std::map<std::string, int> kinds;
  for (const auto& p : dashboard_panels(dashboard)) {
    const std::string title = p.at("title");
    EXPECT_TRUE(ids.insert(p.at("id").get<int>()).second) << "id used twice: " << title;
    const auto& grid = p.at("gridPos");
    EXPECT_LE(grid.at("x").get<int>() + grid.at("w").get<int>(), 24) << title;
    ++kinds[p.at("type")];
    if (p.at("type") == "row") continue;
    EXPECT_FALSE(p.value("description", "").empty()) << title;
    ASSERT_TRUE(p.contains("targets")) << title;
    for (const auto& t : p["targets"]) {
      EXPECT_FALSE(metric_names(t.at("expr")).empty()) << title << ": a query without a metric";
      EXPECT_EQ(t.at("datasource").at("uid"), "${datasource}") << title;
    }
  }
  EXPECT_GE(kinds["row"], 5);
  EXPECT_GE(kinds["timeseries"], 10);
}

/// A systemd unit file as its settings: key -> every value given to it, in order.
std::multimap<std::string, std::string> unit_settings(const std::string& path) {
  std::multimap<std::string, std::string> out;
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;
    const auto eq = line.find('=');
    if (eq != std::string::npos) out.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

std::string one(const std::multimap<std::string, std::string>& unit, const std::string& key) {
  EXPECT_EQ(unit.count(key), 1u) << key;
  const auto it = unit.find(key);
  return it == unit.end() ? "" : it->second;
}

/// "10min", "5", "90s" as seconds (the forms the units use).
int seconds(const std::string& v) {
  if (v.ends_with("min")) return std::stoi(v) * 60;
  return std::stoi(v);
}

TEST(DeployUnitTest, RestartsStopOnWhatARestartCannotFixAndTheStartLimitTrips) {
  for (const char* name : {"sluice.service", "sluice@.service"}) {
    SCOPED_TRACE(name);
    const auto unit = unit_settings(source_dir() + "/deploy/" + name);
    // A config error is found by `run` itself (exit 2): systemd's RestartPreventExitStatus=
    // does not cover an ExecStartPre= that fails, so there must be none.
    EXPECT_EQ(unit.count("ExecStartPre"), 0u);
    std::set<std::string> prevented;
    std::istringstream codes(one(unit, "RestartPreventExitStatus"));
    for (std::string c; codes >> c;) prevented.insert(c);
    EXPECT_EQ(prevented, (std::set<std::string>{"2", "7"}))
        << "2: bad config; 7: another instance runs with this kafka.instance_id";
    EXPECT_EQ(one(unit, "Restart"), "on-failure");
    // Anything else that fails at once (an unopenable spool, a refused password) fails for
    // good after StartLimitBurst tries: the tries fit well inside the interval.
    const int burst = std::stoi(one(unit, "StartLimitBurst"));
    EXPECT_LT(burst * seconds(one(unit, "RestartSec")), seconds(one(unit, "StartLimitIntervalSec")));
    EXPECT_GE(burst, 3) << "a transient failure at start gets a few more tries";
  }
  // The template differs only in what is per instance: its config and its state directory.
  auto single = unit_settings(source_dir() + "/deploy/sluice.service");
  auto templ = unit_settings(source_dir() + "/deploy/sluice@.service");
  EXPECT_EQ(one(templ, "ExecStart"), "/usr/bin/sluice run --config /etc/sluice/%i.yaml");
  EXPECT_EQ(one(templ, "StateDirectory"), "sluice/%i");
  for (const char* key : {"ExecStart", "StateDirectory", "Description"}) {
    single.erase(key);
    templ.erase(key);
  }
  EXPECT_EQ(single, templ) << "the sandbox and restart policy of the two units agree";
}

TEST(DeployNamesTest, MetricNamesSkipQuotedLabelValues) {
  EXPECT_EQ(metric_names(R"(rate(sluice_dead_letters_total{reason!="sluice_x"}[5m]) /)"
                         R"( sum(sluice_batch_seconds_bucket))"),
            (std::set<std::string>{"sluice_dead_letters_total", "sluice_batch_seconds_bucket"}));
}

}  // namespace
}  // namespace sluice::testing
