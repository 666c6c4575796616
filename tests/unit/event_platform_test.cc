// Event Platform events: schema URIs, one table per title and major that grows as newer minor
// versions add fields, and the refusal of a change that is not additive.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ingest/decoder.h"
#include "ingest/schema.h"
#include "testing/decoded_row.h"
#include "testing/fake_schema_source.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using testing::EventFactory;
using Version = EventFactory::PlatformVersion;

TEST(SchemaId, UrisSplitIntoTitleAndVersionAndPathsFollowTheRepositoryLayout) {
  const auto id = parse_schema_uri("/analytics/legacy/navigationtiming/1.2.0");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->title, "/analytics/legacy/navigationtiming");
  EXPECT_EQ(format_version(id->revision), "1.2.0");
  EXPECT_EQ(parse_schema_uri("/a/b/1.2.0.json")->title, "/a/b");
  EXPECT_LT(*parse_version("1.2.9"), *parse_version("1.10.0"));  // packed in version order
  EXPECT_EQ(unpack_version(*parse_version("3.2.1")).major, 3);
  for (const char* bad : {"analytics/x/1.0.0", "/x/1.0", "/x/1.0.0.0", "/1.0.0", "/x/../y/1.0.0",
                          "/x//y/1.0.0", "/x/1.0.-1", "/x/1.2.99999999", "/x y/1.0.0", ""}) {
    EXPECT_FALSE(parse_schema_uri(bad)) << bad;
  }
  EXPECT_EQ(schema_file("/a/b", *parse_version("1.2.0")), "a/b/1.2.0.json");
  EXPECT_EQ(schema_file("Capsule", 12), "Capsule/12.json");
  EXPECT_EQ(describe_schema("/a/b", *parse_version("1.2.0")), "/a/b 1.2.0");
  EXPECT_EQ(table_name_of("/analytics/legacy/navigation-timing", *parse_version("2.0.1")),
            "analytics_legacy_navigation_timing_2");
}

TEST(EventPlatformSchema, TheWholeEventIsFlattenedButItsIdAndTimeFillTheFixedColumns) {
  auto s = compile_schema(EventFactory::kPlatformTitle, *parse_version("1.1.0"),
                          EventFactory::platform_schema_document(Version::k1_1));
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  const auto& table = *(*s)->table;
  EXPECT_EQ(table.name(), EventFactory::kPlatformTable);
  EXPECT_EQ(table.column_list(),
            "(`uuid`,`timestamp`,`dt`,`$schema`,`meta_stream`,`meta_dt`,`meta_domain`,`count`,"
            "`session_id`,`ratio`,`action`)");
  EXPECT_NE(table.create_sql().find("UNIQUE KEY `ix_uuid` (`uuid`)"), std::string::npos);
  EXPECT_EQ(table.create_sql().find("wiki"), std::string::npos);
  // A field that would take a fixed column's name is refused, naming it.
  auto clash = compile_schema("/t", *parse_version("1.0.0"),
                              R"({"properties": {"Timestamp": {"type": "integer"}}})");
  ASSERT_FALSE(clash.is_ok());
  EXPECT_NE(clash.status().message().find("Timestamp flattens to column Timestamp"),
            std::string::npos)
      << clash.status().message();
}

TEST(EventPlatformSchema, AddColumnsSqlAddsNullableColumnsOnlyIfAbsent) {
  const storage::TableLayout t("t_1", {}, storage::TableShape::kEventPlatform);
  EXPECT_EQ(t.add_columns_sql({{"a", storage::ColumnType::kInteger},
                               {"b`c", storage::ColumnType::kString}}),
            "ALTER TABLE `t_1` ADD COLUMN IF NOT EXISTS `a` BIGINT NULL, ADD COLUMN IF NOT "
            "EXISTS `b``c` VARBINARY(1024) NULL");
  // check_layout lists what a growable table lacks instead of calling it a mismatch.
  std::vector<storage::ExistingColumn> existing = {
      {"id", "bigint", false, false, true}, {"uuid", "char", false, false, false},
      {"timestamp", "varbinary"},           {"dt", "datetime"},
      {"a", "bigint"}};
  const storage::TableLayout grown("t_1",
                                   {{"a", storage::ColumnType::kInteger},
                                    {"b", storage::ColumnType::kNumber}},
                                   storage::TableShape::kEventPlatform);
  std::vector<storage::Column> missing;
  EXPECT_EQ(storage::check_layout(grown, existing, &missing), "");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].name, "b");
  EXPECT_EQ(storage::check_layout(grown, existing), "column `b` is missing");
  existing[4].data_type = "varbinary";  // retyped by hand: still a mismatch
  EXPECT_EQ(storage::check_layout(grown, existing, &missing),
            "column `a` is varbinary, where Sluice writes BIGINT");
}

class EventPlatformTest : public ::testing::Test {
 protected:
  void put(const std::string& root, Version v) {
    const auto file = std::filesystem::path(root) / EventFactory::platform_schema_file(v).substr(1);
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << EventFactory::platform_schema_document(v);
  }

  /// Decodes `event` and returns its row by column name ("NULL" for NULL), or {} with reason_.
  std::map<std::string, std::string> row_of(Decoder& decoder, const std::string& event) {
    const Schema* s = decoder.decode(event, 1'234'000, reason_);
    if (s == nullptr) return {};
    auto out = testing::decoded_row(decoder, *s);
    out["(table)"] = s->layout()->name();
    return out;
  }

  testing::TempDir dir_;
  std::string reason_;
};

TEST_F(EventPlatformTest, AnEventBecomesARowKeyedByItsMetaId) {
  put(dir_.path(), Version::k1_0);
  SchemaRegistry registry(dir_.path());
  Decoder decoder(registry);
  auto row = row_of(decoder, EventFactory::platform_event(Version::k1_0, 1, 2, 3));
  ASSERT_FALSE(row.empty()) << reason_;
  EXPECT_EQ(row["(table)"], "test_click_1");
  EXPECT_EQ(row["uuid"], EventFactory::uuid_for(1, 2, 3));
  EXPECT_EQ(row["timestamp"], "20231114221323");
  EXPECT_EQ(row["dt"], "2023-11-14 22:13:23");
  EXPECT_EQ(row["$schema"], "/test/click/1.0.0");
  EXPECT_EQ(row["meta_stream"], "test.click");
  EXPECT_EQ(row["meta_domain"], "en.wikipedia.org");
  EXPECT_EQ(row["count"], "3");
  EXPECT_EQ(row["action"], "click-3");
  EXPECT_EQ(row.count("meta_id"), 0u);

  // Validated against the whole schema, with reasons naming the field.
  const std::string good = EventFactory::platform_event(Version::k1_0, 1, 2, 3);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string e = good;
    e.replace(e.find(from), from.size(), to);
    return e;
  };
  const std::pair<std::string, std::string> cases[] = {
      {with(R"("action":"click-3")", R"("action":3)"), "wrong_type: action: expected string"},
      {with(R"(,"action":"click-3")", ""), "missing_required: action"},
      {with(R"("count":3)", R"("count":3,"extra":1)"), "unexpected_field: extra: not declared"},
      {with(R"("$schema":"/test/click/1.0.0")", R"("$schema":"test/click")"),
       "invalid_value: $schema: 'test/click' is not a schema URI"},
      {with(R"("$schema":"/test/click/1.0.0")", R"("$schema":"/test/click/1.7.0")"),
       "unknown_revision: /test/click 1.7.0"},
      {with(R"("$schema":"/test/click/1.0.0")", R"("$schema":"/test/nope/1.0.0")"),
       "unknown_schema: /test/nope"},
      {with(R"("id":")", R"("id":"z)"), "invalid_value: meta.id: expected a UUID"},
      {with(R"("dt":"2023-11-14T22:13:23Z","action")", R"("dt":"yesterday","action")"),
       "invalid_value: dt: not an ISO-8601 date-time"},
  };
  for (const auto& [event, reason] : cases) {
    EXPECT_TRUE(row_of(decoder, event).empty()) << event;
    EXPECT_EQ(reason_.substr(0, reason.size()), reason) << event;
  }
}

TEST_F(EventPlatformTest, VersionsOfOneMajorShareATableThatGrowsByTheFieldsTheyAdd) {
  put(dir_.path(), Version::k1_0);
  put(dir_.path(), Version::k1_1);
  SchemaRegistry registry(dir_.path());
  Decoder decoder(registry);
  // The old version first: its table has its columns only.
  auto old_row = row_of(decoder, EventFactory::platform_event(Version::k1_0, 1, 0, 1));
  ASSERT_FALSE(old_row.empty()) << reason_;
  // The disk's 1.1.0 was admitted with it: the table's layout already holds both.
  auto versions = registry.versions_of(EventFactory::kPlatformTitle, 1);
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0]->layout(), versions[1]->layout());
  EXPECT_EQ(old_row["session_id"], "NULL");
  EXPECT_EQ(old_row["ratio"], "NULL");
  EXPECT_EQ(old_row["count"], "1");
  auto new_row = row_of(decoder, EventFactory::platform_event(Version::k1_1, 1, 0, 2));
  ASSERT_FALSE(new_row.empty()) << reason_;
  EXPECT_EQ(new_row["session_id"], "s2");
  EXPECT_EQ(new_row["ratio"], "0.5");
  EXPECT_EQ(versions[0]->layout()->column_list(),
            "(`uuid`,`timestamp`,`dt`,`$schema`,`meta_stream`,`meta_dt`,`meta_domain`,`count`,"
            "`action`,`session_id`,`ratio`)");
}

TEST_F(EventPlatformTest, AVersionFetchedLaterGrowsTheTableIntoANewLayoutAndOldRowsFollowIt) {
  put(dir_.path(), Version::k1_0);
  testing::FakeSchemaSource repo;
  repo.put(EventFactory::kPlatformTitle, *parse_version("1.1.0"),
           EventFactory::platform_schema_document(Version::k1_1));
  SchemaRegistry registry(dir_.path());
  registry.use_repository(&repo, dir_.file("cache"));
  Decoder decoder(registry);
  auto first = row_of(decoder, EventFactory::platform_event(Version::k1_0, 1, 0, 1));
  ASSERT_FALSE(first.empty()) << reason_;
  const storage::TableLayout* before =
      registry.versions_of(EventFactory::kPlatformTitle, 1)[0]->layout();
  EXPECT_EQ(before->event_columns().size(), 6u);
  // 1.1.0 is fetched: pending first, then a row in the grown layout.
  EXPECT_TRUE(row_of(decoder, EventFactory::platform_event(Version::k1_1, 1, 0, 2)).empty());
  EXPECT_TRUE(decoder.schema_pending()) << reason_;
  auto grown = row_of(decoder, EventFactory::platform_event(Version::k1_1, 1, 0, 2));
  ASSERT_FALSE(grown.empty()) << reason_;
  const Schema* old = registry.versions_of(EventFactory::kPlatformTitle, 1)[0];
  EXPECT_NE(old->layout(), before);                      // a new, wider layout...
  EXPECT_EQ(before->event_columns().size(), 6u);         // ...the old one unchanged for
  EXPECT_EQ(old->layout()->event_columns().size(), 8u);  // batches that still hold it
  auto later_old = row_of(decoder, EventFactory::platform_event(Version::k1_0, 1, 0, 3));
  EXPECT_EQ(later_old["session_id"], "NULL");
  EXPECT_EQ(later_old["count"], "3");
  // Kept in the cache at the repository's layout.
  EXPECT_TRUE(std::filesystem::exists(dir_.file("cache/test/click/1.1.0.json")));
}

TEST_F(EventPlatformTest, AChangeThatIsNotAdditiveIsRefusedWithAReasonWhicheverComesFirst) {
  for (const Version bad : {Version::kRetyped, Version::kRemoved}) {
    for (const bool bad_met_first : {false, true}) {
      testing::TempDir dir;
      put(dir.path(), Version::k1_0);
      put(dir.path(), bad);
      SchemaRegistry registry(dir.path());
      Decoder decoder(registry);
      const std::string old_event = EventFactory::platform_event(Version::k1_0, 1, 0, 1);
      const std::string bad_event = EventFactory::platform_event(bad, 1, 0, 2);
      if (bad_met_first) {
        EXPECT_TRUE(row_of(decoder, bad_event).empty());
      } else {
        EXPECT_FALSE(row_of(decoder, old_event).empty()) << reason_;
        EXPECT_TRUE(row_of(decoder, bad_event).empty());
      }
      const std::string expected =
          bad == Version::kRetyped
              ? "incompatible_version: /test/click 1.2.0 is not an additive change of 1.0.0: "
                "column count is BIGINT in 1.0.0 and VARBINARY(1024) in 1.2.0"
              : "incompatible_version: /test/click 1.2.0 is not an additive change of 1.0.0: "
                "column count is gone (removed or renamed)";
      EXPECT_EQ(reason_, expected);
      EXPECT_FALSE(decoder.schema_pending());
      // The old version still writes; the table never took the refused one's columns.
      auto row = row_of(decoder, old_event);
      ASSERT_FALSE(row.empty()) << reason_;
      EXPECT_EQ(registry.versions_of(EventFactory::kPlatformTitle, 1).size(), 1u);
    }
  }
}

TEST_F(EventPlatformTest, CheckConfigCompilesTitlesInFoldersOfAnyDepth) {
  put(dir_.path(), Version::k1_0);
  put(dir_.path(), Version::k1_1);
  std::filesystem::create_directories(dir_.file("Capsule"));
  std::ofstream(dir_.file("Capsule/3.json")) << R"({"properties": {"x": {"type": "integer"}}})";
  SchemaRegistry registry(dir_.path());
  auto n = registry.load_all();
  ASSERT_TRUE(n.is_ok()) << n.status().message();
  EXPECT_EQ(*n, 3u);
  std::ofstream(dir_.file("test/click/latest.json")) << "{}";
  auto bad = registry.load_all();
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("latest.json: file name must be"), std::string::npos);
}

TEST_F(EventPlatformTest, ARefusedVersionIsNotKeptSoARestartGivesTheSameVerdict) {
  put(dir_.path(), Version::k1_0);
  testing::FakeSchemaSource repo;
  repo.put(EventFactory::kPlatformTitle, *parse_version("1.2.0"),
           EventFactory::platform_schema_document(Version::kRetyped));
  for (int run = 0; run < 2; ++run) {  // the second: a restart, with the same cache
    SchemaRegistry registry(dir_.path());
    registry.use_repository(&repo, dir_.file("cache"));
    Decoder decoder(registry);
    EXPECT_FALSE(row_of(decoder, EventFactory::platform_event(Version::k1_0, 1, 0, 1)).empty());
    const std::string bad = EventFactory::platform_event(Version::kRetyped, 1, 0, 2);
    EXPECT_TRUE(row_of(decoder, bad).empty());  // fetched: pending
    EXPECT_TRUE(row_of(decoder, bad).empty());
    EXPECT_EQ(reason_.rfind("incompatible_version: /test/click 1.2.0", 0), 0u) << reason_;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("cache/test/click/1.2.0.json")));
  }
}

TEST_F(EventPlatformTest, NamesThatMapToOneTableAreRefusedAfterTheFirst) {
  put(dir_.path(), Version::k1_0);
  // A capsule schema `test_click`, revision 1: table test_click_1, as /test/click's major 1.
  std::filesystem::create_directories(dir_.file("test_click"));
  std::ofstream(dir_.file("test_click/1.json")) << R"({"properties": {"x": {"type": "integer"}}})";
  SchemaRegistry registry(dir_.path());
  Decoder decoder(registry);
  EXPECT_FALSE(row_of(decoder, EventFactory::platform_event(Version::k1_0, 1, 0, 1)).empty());
  std::string capsule = EventFactory::renamed("test_click", 1, 1, 0, 2);
  EXPECT_TRUE(row_of(decoder, capsule).empty());
  EXPECT_EQ(reason_,
            "unknown_schema: test_click revision 1 would be written to table test_click_1, which "
            "holds /test/click already (names that differ only in characters outside "
            "[A-Za-z0-9] share a table)");
}

TEST_F(EventPlatformTest, CheckConfigRefusesDeployedVersionsThatConflict) {
  put(dir_.path(), Version::k1_0);
  put(dir_.path(), Version::kRemoved);
  SchemaRegistry registry(dir_.path());
  auto n = registry.load_all();
  ASSERT_FALSE(n.is_ok());
  EXPECT_NE(n.status().message().find("test/click/1.2.0.json: incompatible_version: /test/click "
                                      "1.2.0 is not an additive change of 1.0.0: column count is "
                                      "gone"),
            std::string::npos)
      << n.status().message();
}

TEST_F(EventPlatformTest, AMetaIdInUpperCaseIsStoredInLowerCase) {
  put(dir_.path(), Version::k1_0);
  SchemaRegistry registry(dir_.path());
  Decoder decoder(registry);
  std::string event = EventFactory::platform_event(Version::k1_0, 0xab, 0xcd, 0xef);
  const std::string id = R"("id":")";
  const auto at = event.find(id) + id.size();
  for (size_t i = at; i < at + 36; ++i) event[i] = static_cast<char>(std::toupper(event[i]));
  auto row = row_of(decoder, event);
  ASSERT_FALSE(row.empty()) << reason_;
  EXPECT_EQ(row["uuid"], EventFactory::uuid_for(0xab, 0xcd, 0xef));
}

}  // namespace
}  // namespace sluice::ingest
