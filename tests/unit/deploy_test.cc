// The monitoring that deploy/ ships, checked without a server: the alert rules with promtool
// (syntax, and their unit tests on synthetic series), every dashboard query as PromQL, and the
// dashboard's shape. tests/integration/deploy_test.cc checks the metric names against a live
// /metrics. promtool comes from Debian's `prometheus` package (scripts/install-deps).

#include <gtest/gtest.h>

#include <fstream>
#include <map>
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

TEST(DeployNamesTest, MetricNamesSkipQuotedLabelValues) {
  EXPECT_EQ(metric_names(R"(rate(sluice_dead_letters_total{reason!="sluice_x"}[5m]) /)"
                         R"( sum(sluice_batch_seconds_bucket))"),
            (std::set<std::string>{"sluice_dead_letters_total", "sluice_batch_seconds_bucket"}));
}

}  // namespace
}  // namespace sluice::testing
