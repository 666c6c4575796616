#pragma once
/// JSON Schemas of `event` objects, compiled into validation rules and a table layout.
/// Files live at `<root>/<SchemaName>/<revision>.json`, EventLogging's layout. Both the
/// per-property `"required": true` (draft 3) and the `"required": [...]` list are honoured;
/// `type` (a name or a list of names), `enum`, `additionalProperties: false` and nested objects
/// with `properties` are checked. Nested leaves become columns `event_<a>_<b>`.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "ingest/field_table.h"
#include "storage/table_layout.h"

namespace sluice::ingest {

/// Bit set of JSON types a value may have.
enum JsonType : uint8_t {
  kTypeNull = 1,
  kTypeBoolean = 2,
  kTypeInteger = 4,
  kTypeNumber = 8,  ///< any number, integral or not
  kTypeString = 16,
  kTypeArray = 32,
  kTypeObject = 64,
  kTypeAny = 127,
};

struct ObjectRule;

struct FieldRule {
  std::string name;
  std::string path;  ///< "event.nested.pi", for error messages
  uint8_t types = kTypeAny;
  bool required = false;
  int column = -1;  ///< index into the event columns; -1 for an object with properties
  int index = 0;    ///< schema-wide index, for "seen" tracking
  storage::ColumnType column_type = storage::ColumnType::kJson;
  std::vector<std::string> enum_strings;
  std::vector<double> enum_numbers;
  std::vector<bool> enum_bools;
  bool has_enum = false;
  std::unique_ptr<ObjectRule> object;  ///< nested object with declared properties
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct ObjectRule {
  std::string path;  ///< "event" or "event.nested"
  std::vector<FieldRule> fields;
  FieldTable by_name;  ///< field name → index into `fields`
  bool additional_allowed = true;
};

/// One compiled schema revision. Immutable after compilation.
struct Schema {
  std::string name;
  int64_t revision = 0;
  ObjectRule root;
  int field_count = 0;  ///< number of FieldRules in the whole tree
  std::unique_ptr<storage::TableLayout> table;
};

/// Compiles a schema document (the JSON text of `<revision>.json`). Refuses, naming the
/// fields, a schema MariaDB could not hold: leaves whose flattened column names collide
/// (`a_b` and `a.b`, `Value` and `value`: column names are case-insensitive), column or table
/// names MariaDB refuses (longer than 64, control characters, characters outside the Basic
/// Multilingual Plane, a trailing space), more than 1,000 columns, rows wider than 65,535 bytes.
Result<std::unique_ptr<Schema>> compile_schema(std::string_view name, int64_t revision,
                                               std::string_view json);

/// Finds and caches compiled schemas under a root folder. Unknown (name, revision) pairs are
/// remembered for 30 s so a stream of unknown events does not hit the disk per event — at most
/// 1,024 of them, so a stream of distinct hostile names cannot grow the memory; names that are
/// not valid (valid_schema_name) are refused without being remembered.
/// Thread safety: owned and called by the ingest thread only; the Schema objects (and their
/// tables) it hands out are immutable and live as long as the registry.
class SchemaRegistry {
 public:
  explicit SchemaRegistry(std::string root, const Clock& clock = SystemClock::instance());

  /// The schema, or nullptr with `error` set to a dead-letter reason
  /// ("unknown_schema: ..." / "unknown_revision: ...").
  const Schema* find(std::string_view name, int64_t revision, std::string& error);

  /// Compiles every schema file under the root; used by check-config. Returns the number of
  /// schemas compiled, or the first error with its file.
  Result<size_t> load_all();

  const std::string& root() const { return root_; }
  /// Unknown (name, revision) pairs remembered now: at most 1,024.
  size_t remembered_misses() const { return misses_.size(); }

 private:
  struct Entry {
    std::unique_ptr<Schema> schema;
    std::string error;  ///< a dead-letter reason, when there is no schema
  };
  struct Miss {
    std::string error;
    Clock::time_point checked_at;
  };

  Entry load(std::string_view name, int64_t revision) const;

  std::string root_;
  const Clock& clock_;
  /// Compiled schemas by name and revision: bounded by the files under the root. Never erased
  /// (batches point at their tables).
  std::unordered_map<std::string, std::unordered_map<int64_t, std::unique_ptr<Schema>>, StringHash,
                     std::equal_to<>>
      schemas_;
  /// Recent misses by "<name>\0<revision>"; at most kMaxMisses (schema.cc).
  std::unordered_map<std::string, Miss> misses_;
  const Schema* last_ = nullptr;
};

/// True when a schema name is safe to use as a folder name (no path tricks).
bool valid_schema_name(std::string_view name);

}  // namespace sluice::ingest
