#pragma once
/// The MariaDB table of one schema revision (DESIGN.md §3): fixed columns followed by one column
/// per leaf of the schema, and the SQL that creates, grows and loads it. Immutable once built;
/// safe to share across threads.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::storage {

/// Longest value, in bytes, of a VARBINARY(1024) column; longer values are dead-lettered.
inline constexpr size_t kMaxTextBytes = 1024;

enum class ColumnType {
  kBoolean,  ///< TINYINT(1)
  kInteger,  ///< BIGINT
  kNumber,   ///< DOUBLE
  kString,   ///< VARBINARY(1024), UTF-8 bytes
  kJson,     ///< VARBINARY(1024), the value's JSON text (arrays, free-form objects)
};

struct Column {
  std::string name;  ///< e.g. event_nested_deeplyNested_pi
  ColumnType type;
};

/// The capsule columns every capsule table starts with, in this order.
inline constexpr std::string_view kFixedColumns[] = {"uuid", "timestamp", "dt",
                                                     "wiki", "webHost",   "userAgent"};
inline constexpr size_t kFixedColumnCount = std::size(kFixedColumns);
/// The columns every Event Platform table starts with: `meta.id` (its dashes dropped), and the
/// event's `dt` in MediaWiki form and as a DATETIME.
inline constexpr std::string_view kEventPlatformFixedColumns[] = {"uuid", "timestamp", "dt"};

/// Which events a table holds: capsules (one table per schema revision, never altered) or Event
/// Platform events (one table per schema title and major version, grown a column at a time as
/// newer minor versions add fields).
enum class TableShape { kCapsule, kEventPlatform };

/// `<SchemaName>_<revision>` with every character outside [A-Za-z0-9] replaced by '_'.
std::string table_name_for(std::string_view schema, long long revision);

/// SQL type of a column type, e.g. "BIGINT".
std::string_view sql_type(ColumnType type);

/// Quotes an identifier with backticks (doubling any backtick inside).
std::string quote_identifier(std::string_view name);

/// A column of a table that exists already, as information_schema.COLUMNS describes it.
struct ExistingColumn {
  std::string name;
  std::string data_type;          ///< DATA_TYPE, lower case: "varbinary", "bigint", ...
  bool nullable = true;           ///< IS_NULLABLE
  bool has_default = false;       ///< a DEFAULT, DEFAULT NULL included
  bool filled_by_server = false;  ///< auto-increment or generated
};

class TableLayout;

/// Why a table that exists already cannot take this layout's rows, naming the column ("column
/// `dt` is missing", "column `legacy_id` is NOT NULL without a default"), or "" when it can:
/// every column Sluice writes exists (names compare case-insensitively) with a type of the same
/// family (text, integer, floating point, date-time), and every other column fills itself
/// (nullable, a default, auto-increment, generated). Widths are not compared: a value too wide
/// for a narrower column is refused per row, and that row alone is dead-lettered.
/// With `missing` (a table that may grow), event columns the table lacks are listed there
/// instead of being a problem.
std::string check_layout(const TableLayout& layout, const std::vector<ExistingColumn>& existing,
                         std::vector<Column>* missing = nullptr);

class TableLayout {
 public:
  TableLayout(std::string name, std::vector<Column> event_columns,
              TableShape shape = TableShape::kCapsule);

  const std::string& name() const { return name_; }
  TableShape shape() const { return shape_; }
  /// Whether newer versions may add columns to the table (ALTER TABLE ... ADD COLUMN).
  bool growable() const { return shape_ == TableShape::kEventPlatform; }
  std::span<const std::string_view> fixed_columns() const;
  const std::vector<Column>& event_columns() const { return event_columns_; }
  /// Fixed plus event columns.
  size_t column_count() const { return fixed_columns().size() + event_columns_.size(); }
  /// ALTER TABLE ... ADD COLUMN IF NOT EXISTS ... for `columns` (nullable, so the rows before
  /// keep NULL there; MariaDB adds them instantly, without copying the table).
  std::string add_columns_sql(const std::vector<Column>& columns) const;
  /// CREATE TABLE IF NOT EXISTS ... for this layout.
  const std::string& create_sql() const { return create_sql_; }
  /// "(`uuid`,`timestamp`,...)": the column list every encoded row follows.
  const std::string& column_list() const { return column_list_; }

 private:
  std::string name_;
  TableShape shape_;
  std::vector<Column> event_columns_;
  std::string create_sql_;
  std::string column_list_;
};

}  // namespace sluice::storage
