// The dashboard and the alert rules of deploy/ against a live /metrics: a real `sluice` with a
// replica configured, after events went through, exports every metric name a panel or a rule
// reads — and every metric it exports is shown on the dashboard or watched by a rule.

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "admin/admin_client.h"
#include "tests/deploy_files.h"
#include "tests/integration/stack_test.h"

namespace sluice::testing {
namespace {

/// The names of the samples in a Prometheus text exposition (histograms as their _bucket, _sum
/// and _count series).
std::set<std::string> sample_names(const std::string& exposition) {
  std::set<std::string> out;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    out.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return out;
}

/// The metric family a sample name belongs to (a histogram's series name its family).
std::string family_of(const std::string& name) {
  static const std::regex suffix("_(bucket|sum|count)$");
  return std::regex_replace(name, suffix, "");
}

class DeployMetricsTest : public StackTest {};

TEST_F(DeployMetricsTest, EveryNameTheDashboardAndRulesUseIsExportedAndEveryExportedOneIsUsed) {
  MariaDb replica(dir_.file("replica"));
  replica.exec("CREATE TABLE TestSchema_1 (`timestamp` VARBINARY(14), KEY (`timestamp`))");
  replica.exec("INSERT INTO TestSchema_1 VALUES ('20231114221320')");
  auto sluice = start_sluice(dir_, config_watching(replicas_lines(replica)));
  produce(50);
  ASSERT_TRUE(wait_for_all()) << sluice->log();

  // Every labelled family has a series once events went through and the replica was checked.
  std::string url;
  ASSERT_TRUE(wait_until([&] { return !(url = admin_url(*sluice)).empty(); }, 10s));
  std::set<std::string> exported;
  std::string text;
  ASSERT_TRUE(wait_until(
      [&] {
        auto reply = admin::http_request(url, "GET", "/metrics", "", "", 5000);
        if (!reply || reply->status != 200) return false;
        text = reply->body;
        exported = sample_names(text);
        return exported.contains("sluice_replica_max_timestamp_seconds") &&
               exported.contains("sluice_table_max_timestamp_seconds") &&
               exported.contains("sluice_consumer_lag_events") &&
               exported.contains("sluice_rows_inserted_total");
      },
      30s))
      << text;

  std::map<std::string, std::string> used;  // name -> where
  for (const auto& e : dashboard_exprs()) {
    for (const auto& n : metric_names(e)) used.emplace(n, "dashboard: " + e);
  }
  for (const auto& r : alert_rules()) {
    for (const auto& n : metric_names(r.expr)) used.emplace(n, "alert " + r.name);
  }
  ASSERT_GE(used.size(), 20u);
  for (const auto& [name, where] : used) {
    EXPECT_TRUE(exported.contains(name)) << name << " is not exported; used by " << where;
  }
  std::set<std::string> used_families;
  for (const auto& [name, where] : used) used_families.insert(family_of(name));
  // Exported under an old name for one release besides the new one (docs/reference.md,
  // Metrics): nothing shipped uses them any more.
  const std::set<std::string> deprecated = {"sluice_consumer_lag"};
  for (const auto& name : exported) {
    if (!name.starts_with("sluice_") || deprecated.contains(name)) continue;
    EXPECT_TRUE(used_families.contains(family_of(name)))
        << name << " is exported but neither the dashboard nor a rule uses it";
  }
  sluice->signal(SIGTERM);
  EXPECT_EQ(sluice->wait(60s), std::optional<int>(0)) << sluice->log();
}

}  // namespace
}  // namespace sluice::testing
