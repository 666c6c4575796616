#pragma once
/// JSON Schemas, compiled into validation rules and a table layout: of a capsule's `event`
/// object, at `<root>/<SchemaName>/<revision>.json` (EventLogging's layout), or of a whole
/// Event Platform event, at `<root>/<title>/<major.minor.patch>.json` (schema_id.h). Both the
/// per-property `"required": true` (draft 3) and the `"required": [...]` list are honoured;
/// `type` (a name or a list of names), `enum`, `additionalProperties: false` and nested objects
/// with `properties` are checked. Nested leaves become columns `event_<a>_<b>`.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "ingest/field_table.h"
#include "ingest/schema_id.h"
#include "ingest/schema_repository.h"
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

/// One compiled schema revision. Immutable after compilation, but for where an Event Platform
/// version's rows go (`grown`, `cell_of`), which its registry moves as newer minor versions of
/// the same major add columns (on the registry's thread, the only one that reads them).
struct Schema {
  std::string name;      ///< a capsule's schema name, or an Event Platform title
  int64_t revision = 0;  ///< a capsule's revision, or an Event Platform packed version
  ObjectRule root;
  int field_count = 0;  ///< number of FieldRules in the whole tree
  std::unique_ptr<storage::TableLayout> table;  ///< this revision's own columns
  /// Event Platform: the table of every admitted version of this major (the union of their
  /// columns, in the order they were added), and per column of it the column of this version
  /// that fills it (-1: NULL).
  const storage::TableLayout* grown = nullptr;
  std::vector<int> cell_of;

  /// Where this revision's rows go, in that layout's column order.
  const storage::TableLayout* layout() const { return grown != nullptr ? grown : table.get(); }
};

/// Compiles a schema document (the JSON text of `<revision>.json`). Refuses, naming the
/// fields, a schema MariaDB could not hold: leaves whose flattened column names collide
/// (`a_b` and `a.b`, `Value` and `value`: column names are case-insensitive), column or table
/// names MariaDB refuses (longer than 64, control characters, characters outside the Basic
/// Multilingual Plane, a trailing space), more than 1,000 columns, rows wider than 65,535 bytes.
Result<std::unique_ptr<Schema>> compile_schema(std::string_view name, int64_t revision,
                                               std::string_view json);

/// The table of a revision: `<SchemaName>_<revision>` for a capsule, `<title>_<major>` for an
/// Event Platform version (characters outside [A-Za-z0-9] replaced by '_', the title's leading
/// '/' dropped): "analytics_legacy_navigationtiming_1".
std::string table_name_of(std::string_view name, int64_t revision);

/// Finds and caches compiled schemas under a root folder. Unknown (name, revision) pairs are
/// remembered for 30 s so a stream of unknown events does not hit the disk per event — at most
/// 1,024 of them, so a stream of distinct hostile names cannot grow the memory; names that are
/// not valid (valid_schema_name) are refused without being remembered.
/// Thread safety: owned and called by the ingest thread only; the Schema objects (and their
/// tables) it hands out are immutable and live as long as the registry.
class SchemaRegistry {
 public:
  explicit SchemaRegistry(std::string root, const Clock& clock = SystemClock::instance());

  /// Revisions not under the root are looked for under `cache_root` (what earlier fetches
  /// kept there), then asked of `source` (nullptr: none; the cache only) — which must outlive
  /// the registry. A fetched revision that compiles is kept under `cache_root`,
  /// `<SchemaName>/<revision>.json`.
  void use_repository(SchemaSource* source, std::string cache_root);

  /// The schema, or nullptr with `error` set to a dead-letter reason
  /// ("unknown_schema: ..." / "unknown_revision: ..."), or — with a repository that has not
  /// answered yet — to "schema_pending: ..." with pending() true: no answer, ask again later.
  const Schema* find(std::string_view name, int64_t revision, std::string& error);
  /// The last find found no schema only because the repository has not answered yet.
  bool pending() const { return pending_; }
  /// With pending(), after a failed fetch: when the repository may be asked again (before it,
  /// asking changes nothing); the epoch when an answer may come at any time.
  Clock::time_point pending_retry_at() const { return pending_retry_at_; }

  /// Where the compiled schemas came from.
  struct Origins {
    size_t from_path = 0;   ///< schemas.path
    size_t from_cache = 0;  ///< schemas.cache_path, fetched before
    size_t fetched = 0;     ///< the repository, this run
  };
  const Origins& origins() const { return origins_; }
  const SchemaSource* repository() const { return source_; }
  const std::string& cache_root() const { return cache_root_; }

  /// Compiles every schema file under the root; used by check-config. Returns the number of
  /// schemas compiled, or the first error with its file.
  Result<size_t> load_all();
  /// Compiles every revision kept under the cache root (none when there is no such folder).
  Result<size_t> load_cached();

  const std::string& root() const { return root_; }
  /// Unknown (name, revision) pairs remembered now: at most 1,024.
  size_t remembered_misses() const { return misses_.size(); }
  /// The versions of an Event Platform title's major admitted so far, in version order.
  std::vector<const Schema*> versions_of(std::string_view title, int64_t major) const;

 private:
  struct Entry {
    std::unique_ptr<Schema> schema;
    std::string error;     ///< a dead-letter reason, when there is no schema
    bool absent = false;   ///< no such file (another place may have it)
    bool pending = false;  ///< the repository has not answered yet
    std::string fetched_text;  ///< fetched from the repository: kept in the cache if admitted
    Clock::time_point retry_at{};  ///< when pending after a failure: see pending_retry_at
  };
  struct Miss {
    std::string error;
    Clock::time_point checked_at;
  };

  Entry load(const std::string& root, std::string_view name, int64_t revision) const;
  Entry fetch(std::string_view name, int64_t revision);
  Result<size_t> load_all_under(const std::string& root);
  /// Writes a fetched revision under cache_root_ (a failure is logged: it is fetched again).
  void keep(std::string_view name, int64_t revision, const std::string& text);

  /// The versions of one Event Platform title and major that share a table.
  struct Family {
    std::vector<Schema*> versions;  ///< admitted, in version order
    std::vector<std::unique_ptr<storage::TableLayout>> layouts;  ///< each wider; never erased
  };
  /// "" when `schema`'s table is free or already its schema's (a capsule revision's, or its
  /// title's), else a dead-letter reason naming the table's owner.
  std::string claim_table(const Schema& schema);
  /// Admits an Event Platform version to its family: "" when it is an additive change of every
  /// version admitted before (then its rows go to the family's table, grown by its columns), or
  /// a dead-letter reason ("incompatible_version: ..."). A family met for the first time is
  /// joined, in version order, by the versions of its major under the root and the cache too.
  std::string admit(Schema& schema);
  /// admit, into a family that exists: checks `schema` against its versions, and when it is
  /// additive, grows the family's table and points every version's rows at it.
  std::string join(Family& family, Schema& schema);

  std::map<std::string, Family, std::less<>> families_;  ///< by "<title>\0<major>"
  /// Table name → whose rows it holds; bounded by the schemas that compiled.
  std::unordered_map<std::string, std::string> table_owners_;
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
  SchemaSource* source_ = nullptr;
  std::string cache_root_;
  bool pending_ = false;
  Clock::time_point pending_retry_at_{};
  Origins origins_;
};

}  // namespace sluice::ingest
