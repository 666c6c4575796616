#include "ingest/schema.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "testing/fake_schema_source.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using storage::ColumnType;

std::map<std::string, ColumnType> columns_of(const Schema& s) {
  std::map<std::string, ColumnType> out;
  for (const auto& c : s.table->event_columns()) out[c.name] = c.type;
  return out;
}

TEST(Schema, ShippedNavigationTimingMapsEveryFieldToItsColumnType) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  std::string error;
  const Schema* s = registry.find("NavigationTiming", 15485142, error);
  ASSERT_NE(s, nullptr) << error;
  EXPECT_EQ(s->table->name(), "NavigationTiming_15485142");
  const auto cols = columns_of(*s);
  EXPECT_EQ(cols.size(), 36u);
  EXPECT_EQ(cols.at("event_isAnon"), ColumnType::kBoolean);
  EXPECT_EQ(cols.at("event_connectStart"), ColumnType::kInteger);
  EXPECT_EQ(cols.at("event_netinfoDownlink"), ColumnType::kNumber);
  EXPECT_EQ(cols.at("event_mobileMode"), ColumnType::kString);
  const auto& isAnon = s->root.fields[static_cast<size_t>(s->root.by_name.find("isAnon"))];
  EXPECT_TRUE(isAnon.required);
  EXPECT_FALSE(s->root.additional_allowed);
}

TEST(Schema, NestedObjectsFlattenAndBothRequiredStylesCount) {
  auto s = compile_schema("My-Schema", 7, R"({
    "required": ["a"],
    "properties": {
      "a": {"type": "string"},
      "b": {"type": "integer", "required": true},
      "c": {"type": "integer"},
      "arr": {"type": "array"},
      "mixed": {"type": ["integer", "string"]},
      "opt": {"type": ["number", "null"]},
      "free": {"type": "object"},
      "nested": {"type": "object", "properties": {
        "deeplyNested": {"type": "object", "properties": {"pi": {"type": "number"}}}}}
    }})");
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  const Schema& schema = **s;
  EXPECT_EQ(schema.table->name(), "My_Schema_7");
  const auto cols = columns_of(schema);
  EXPECT_EQ(cols.at("event_nested_deeplyNested_pi"), ColumnType::kNumber);
  EXPECT_EQ(cols.at("event_arr"), ColumnType::kJson);
  EXPECT_EQ(cols.at("event_mixed"), ColumnType::kJson);
  EXPECT_EQ(cols.at("event_opt"), ColumnType::kNumber);
  EXPECT_EQ(cols.at("event_free"), ColumnType::kJson);
  EXPECT_FALSE(cols.contains("event_nested"));
  auto field = [&](const char* n) {
    return &schema.root.fields[static_cast<size_t>(schema.root.by_name.find(n))];
  };
  EXPECT_TRUE(field("a")->required);
  EXPECT_TRUE(field("b")->required);
  EXPECT_FALSE(field("c")->required);
  EXPECT_TRUE(schema.root.additional_allowed);
}

TEST(Schema, TableLayoutFollowsTheDesign) {
  auto s = compile_schema("T", 1, R"({"properties": {"x": {"type": "boolean"}}})");
  ASSERT_TRUE(s.is_ok());
  const std::string& sql = (*s)->table->create_sql();
  for (const char* part :
       {"`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY",
        "`uuid` CHAR(32) CHARACTER SET ascii NOT NULL", "`timestamp` VARBINARY(14) NULL",
        "`dt` DATETIME NULL", "`wiki` VARBINARY(1024) NULL", "`webHost` VARBINARY(1024) NULL",
        "`userAgent` VARBINARY(1024) NULL", "`event_x` TINYINT(1) NULL",
        "UNIQUE KEY `ix_uuid` (`uuid`)", "KEY `ix_timestamp` (`timestamp`)"}) {
    EXPECT_NE(sql.find(part), std::string::npos) << part << " in\n" << sql;
  }
  EXPECT_EQ((*s)->table->column_list(),
            "(`uuid`,`timestamp`,`dt`,`wiki`,`webHost`,`userAgent`,`event_x`)");
}

TEST(Schema, TableNamesReplaceEverythingOutsideAlphanumerics) {
  EXPECT_EQ(storage::table_name_for("Edit.Conflict-v2", 3), "Edit_Conflict_v2_3");
  EXPECT_EQ(storage::table_name_for("Plain", 15485142), "Plain_15485142");
}

TEST(Schema, BrokenSchemasAreRefusedWithAReason) {
  EXPECT_FALSE(compile_schema("T", 1, "{not json").is_ok());
  EXPECT_FALSE(compile_schema("T", 1, "[1]").is_ok());
  auto bad_type = compile_schema("T", 1, R"({"properties": {"x": {"type": "strnig"}}})");
  ASSERT_FALSE(bad_type.is_ok());
  EXPECT_NE(bad_type.status().message().find("event.x: unknown type 'strnig'"), std::string::npos);
  auto long_name =
      compile_schema("T", 1, R"({"properties": {")" + std::string(70, 'y') + R"(": {}}})");
  EXPECT_FALSE(long_name.is_ok());
}

TEST(Schema, RegistryReportsUnknownSchemaAndRevisionAndRejectsPathTricks) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  std::string error;
  EXPECT_EQ(registry.find("Nope", 1, error), nullptr);
  EXPECT_EQ(error, "unknown_schema: Nope");
  EXPECT_EQ(registry.find("TestSchema", 2, error), nullptr);
  EXPECT_EQ(error, "unknown_revision: TestSchema revision 2");
  EXPECT_EQ(registry.find("../schemas/TestSchema", 1, error), nullptr);
  EXPECT_NE(error.find("not a valid schema name"), std::string::npos);
  EXPECT_NE(registry.find("TestSchema", 1, error), nullptr);
}

TEST(Schema, LoadAllCompilesEveryShippedSchema) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  auto n = registry.load_all();
  ASSERT_TRUE(n.is_ok()) << n.status().message();
  EXPECT_GE(*n, 4u);
}

TEST(Schema, LoadAllNamesTheBrokenFile) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.file("Broken"));
  std::ofstream(dir.file("Broken/3.json")) << "{\"properties\": {\"x\": {\"type\": 5}}";
  SchemaRegistry registry(dir.path());
  auto n = registry.load_all();
  ASSERT_FALSE(n.is_ok());
  EXPECT_NE(n.status().message().find("Broken/3.json"), std::string::npos);
}

TEST(FieldTable, FindsEveryNameAndOnlyThoseWhateverTheirLength) {
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i)
    names.push_back("field" + std::to_string(i) + std::string(i % 13, 'x'));
  names.push_back("");
  names.push_back("a");
  names.push_back("netinfoEffectiveConnectionType");
  names.push_back("netinfoConnectionType");
  FieldTable table;
  table.build(names);
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(table.find(names[i]), static_cast<int>(i));
  EXPECT_EQ(table.find("field1xx"), -1);
  EXPECT_EQ(table.find("b"), -1);
  EXPECT_EQ(table.find("netinfoConnectionTyp"), -1);
  FieldTable empty;
  EXPECT_EQ(empty.find("anything"), -1);
}

TEST(FieldTable, NamesThatDifferInAnyOneByteAreToldApartAtEveryLength) {
  for (size_t length = 1; length <= 24; ++length) {
    const std::string name(length, 'a');
    FieldTable table;
    table.build({name});
    ASSERT_EQ(table.find(name), 0) << length;
    for (size_t at = 0; at < length; ++at) {
      std::string other = name;
      other[at] = 'b';
      EXPECT_EQ(table.find(other), -1) << "length " << length << ", byte " << at;
      EXPECT_FALSE(FieldTable::same(name, other)) << "length " << length << ", byte " << at;
    }
    EXPECT_EQ(table.find(name.substr(1)), -1);
    EXPECT_EQ(table.find(name + "a"), -1);
  }
}

TEST(Schema, FlattenedNamesThatCollideAreRefusedNamingBothFields) {
  auto nested = compile_schema("T", 1, R"({"properties": {"a_b": {"type": "string"},
      "a": {"type": "object", "properties": {"b": {"type": "integer"}}}}})");
  ASSERT_FALSE(nested.is_ok());
  EXPECT_NE(nested.status().message().find("event.a_b and event.a.b collide"), std::string::npos)
      << nested.status().message();
  EXPECT_NE(nested.status().message().find("column event_a_b"), std::string::npos);
  auto cased = compile_schema(
      "T", 1, R"({"properties": {"Value": {"type": "string"}, "value": {"type": "string"}}})");
  ASSERT_FALSE(cased.is_ok());
  EXPECT_NE(cased.status().message().find("case-insensitive"), std::string::npos);
}

TEST(Schema, LayoutsMariaDbCannotCreateAreRefusedAtCompileTime) {
  for (const std::string& name :
       {std::string("trailing "), std::string("ctl\\u0001"), std::string("emoji\\ud83d\\ude00")}) {
    auto s = compile_schema("T", 1, R"({"properties": {")" + name + R"(": {}}})");
    EXPECT_FALSE(s.is_ok()) << name;
  }
  std::string wide = R"({"properties": {)";
  for (int i = 0; i < 70; ++i)
    wide += (i ? "," : "") + ("\"s" + std::to_string(i) + "\": {\"type\": \"string\"}");
  wide += "}}";
  auto too_wide = compile_schema("T", 1, wide);
  ASSERT_FALSE(too_wide.is_ok());
  EXPECT_NE(too_wide.status().message().find("65535"), std::string::npos)
      << too_wide.status().message();
  auto long_table = compile_schema(std::string(80, 'L'), 1, "{}");
  EXPECT_FALSE(long_table.is_ok());
}

TEST(Schema, UnknownNamesAreRememberedBoundedAndInvalidOnesNever) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  std::string error;
  for (int i = 0; i < 5000; ++i) {
    EXPECT_EQ(registry.find("Unknown" + std::to_string(i), 1, error), nullptr);
    EXPECT_EQ(registry.find("TestSchema", 1000 + i, error), nullptr);
    EXPECT_LE(registry.remembered_misses(), 1024u);
  }
  EXPECT_EQ(error, "unknown_revision: TestSchema revision 5999");
  SchemaRegistry fresh(testing::source_dir() + "/schemas");
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(fresh.find("../x" + std::to_string(i), 1, error), nullptr);
  }
  EXPECT_EQ(fresh.remembered_misses(), 0u);
  // Known schemas are found whatever came before.
  EXPECT_NE(registry.find("TestSchema", 1, error), nullptr);
}

TEST(Schema, AnInvalidSchemaNameOfAnyLengthGivesAReasonThatFitsTheColumn) {
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  std::string error;
  EXPECT_EQ(registry.find(std::string(100'000, 'S'), 1, error), nullptr);
  EXPECT_LE(error.size(), 1024u);
  EXPECT_EQ(error.rfind("unknown_schema: 'SSS", 0), 0u);
  EXPECT_NE(error.find("…"), std::string::npos);
}


// --- A schema repository -------------------------------------------------------------------

constexpr const char* kFetchedSchema =
    R"({"properties": {"a": {"type": "integer", "required": true}, "b": {"type": "string"}}})";

TEST(SchemaRepositoryLookup, ARevisionNotOnDiskIsFetchedOnceKeptInTheCacheAndServedAfterARestart) {
  testing::TempDir cache;
  testing::FakeSchemaSource repo;
  repo.put("Fetched", 3, kFetchedSchema);
  {
    SchemaRegistry registry(testing::source_dir() + "/schemas");
    registry.use_repository(&repo, cache.path());
    std::string error;
    EXPECT_EQ(registry.find("Fetched", 3, error), nullptr) << "the fetch has only just started";
    EXPECT_TRUE(registry.pending());
    EXPECT_NE(error.find("schema_pending: Fetched revision 3 is being fetched from "
                         "http://schemas.test/Fetched/3.json"),
              std::string::npos)
        << error;
    const Schema* s = registry.find("Fetched", 3, error);
    ASSERT_NE(s, nullptr) << error;
    EXPECT_FALSE(registry.pending());
    EXPECT_EQ(s->table->name(), "Fetched_3");
    EXPECT_EQ(registry.find("Fetched", 3, error), s);
    EXPECT_EQ(repo.answers("Fetched", 3), 1);
    EXPECT_EQ(registry.origins().fetched, 1u);
    // Deployed files still win: a shipped schema never goes to the repository.
    ASSERT_NE(registry.find("TestSchema", 1, error), nullptr) << error;
    EXPECT_EQ(repo.answers("TestSchema", 1), 0);
    EXPECT_EQ(registry.origins().from_path, 1u);
  }
  EXPECT_TRUE(std::filesystem::exists(cache.file("Fetched/3.json")));
  EXPECT_FALSE(std::filesystem::exists(cache.file("Fetched/3.json.tmp")));
  // After a restart, with the repository down: the cache serves.
  repo.set_down(true);
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  registry.use_repository(&repo, cache.path());
  std::string error;
  ASSERT_NE(registry.find("Fetched", 3, error), nullptr) << error;
  EXPECT_EQ(registry.origins().from_cache, 1u);
  EXPECT_EQ(repo.answers("Fetched", 3), 1);
}

TEST(SchemaRepositoryLookup, ARepositoryThatCannotAnswerIsPendingNeverADeadLetter) {
  testing::TempDir cache;
  testing::FakeSchemaSource repo;
  repo.put("Fetched", 3, kFetchedSchema);
  repo.set_down(true);
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  registry.use_repository(&repo, cache.path());
  std::string error;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(registry.find("Fetched", 3, error), nullptr);
    EXPECT_TRUE(registry.pending()) << "not an answer: nothing is remembered";
    EXPECT_NE(error.find("(last try: Connection refused)"), std::string::npos) << error;
  }
  EXPECT_EQ(registry.remembered_misses(), 0u);
  repo.set_down(false);
  EXPECT_EQ(registry.find("Fetched", 3, error), nullptr);  // asked afresh
  EXPECT_NE(registry.find("Fetched", 3, error), nullptr) << error;
}

TEST(SchemaRepositoryLookup, NotFoundAndInvalidAnswersAreDeadLetterReasonsNamingTheUrl) {
  testing::TempDir cache;
  testing::FakeSchemaSource repo;
  repo.put("Broken", 1, R"({"properties": {"a": {"type": "integer")");
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  registry.use_repository(&repo, cache.path());
  std::string error;
  (void)registry.find("Missing", 9, error);
  EXPECT_EQ(registry.find("Missing", 9, error), nullptr);
  EXPECT_FALSE(registry.pending());
  EXPECT_EQ(error,
            "unknown_revision: Missing revision 9 is not at "
            "http://schemas.test/Missing/9.json (HTTP 404)");
  // Remembered for a while like any miss: the next event of it does not ask again.
  EXPECT_EQ(registry.find("Missing", 9, error), nullptr);
  EXPECT_EQ(repo.answers("Missing", 9), 1);
  (void)registry.find("Broken", 1, error);
  EXPECT_EQ(registry.find("Broken", 1, error), nullptr);
  EXPECT_FALSE(registry.pending());
  EXPECT_EQ(error.rfind("unknown_revision: Broken revision 1 from "
                        "http://schemas.test/Broken/1.json is not a valid schema (",
                        0),
            0u)
      << error;
  EXPECT_FALSE(std::filesystem::exists(cache.file("Broken/1.json"))) << "never kept";
}

TEST(SchemaRepositoryLookup, AKeptRevisionThatNoLongerCompilesIsFetchedAgain) {
  testing::TempDir cache;
  std::filesystem::create_directories(cache.file("Fetched"));
  std::ofstream(cache.file("Fetched/3.json")) << R"({"properties": {"a": )";  // cut short
  testing::FakeSchemaSource repo;
  repo.put("Fetched", 3, kFetchedSchema);
  SchemaRegistry registry(testing::source_dir() + "/schemas");
  registry.use_repository(&repo, cache.path());
  std::string error;
  EXPECT_EQ(registry.find("Fetched", 3, error), nullptr);
  EXPECT_TRUE(registry.pending()) << error;
  ASSERT_NE(registry.find("Fetched", 3, error), nullptr) << error;
  EXPECT_EQ(registry.origins().fetched, 1u);
  std::ifstream in(cache.file("Fetched/3.json"));
  std::stringstream kept;
  kept << in.rdbuf();
  EXPECT_EQ(kept.str(), kFetchedSchema) << "kept again, whole";
}

}  // namespace
}  // namespace sluice::ingest
