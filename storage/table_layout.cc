#include "storage/table_layout.h"

#include <algorithm>
#include <map>
#include <set>

namespace sluice::storage {

std::string table_name_for(std::string_view schema, long long revision) {
  std::string name;
  name.reserve(schema.size() + 12);
  for (const char c : schema) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    name.push_back(alnum ? c : '_');
  }
  name += '_';
  name += std::to_string(revision);
  return name;
}

std::string_view sql_type(ColumnType type) {
  switch (type) {
    case ColumnType::kBoolean:
      return "TINYINT(1)";
    case ColumnType::kInteger:
      return "BIGINT";
    case ColumnType::kNumber:
      return "DOUBLE";
    case ColumnType::kString:
    case ColumnType::kJson:
      return "VARBINARY(1024)";
  }
  return "VARBINARY(1024)";
}

std::string quote_identifier(std::string_view name) {
  std::string out = "`";
  for (const char c : name) {
    out.push_back(c);
    if (c == '`') out.push_back('`');
  }
  out.push_back('`');
  return out;
}

// GCC 12 at -O2 reports a -Wrestrict overlap inside std::string's own insert and assign, as
// inlined into this constructor, that cannot happen (GCC bug 105651, fixed in GCC 13). Where it
// shows moves with each rewrite of the code, so the warning is silenced here, for GCC 12 only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
TableLayout::TableLayout(std::string name, std::vector<Column> event_columns, TableShape shape)
    : name_(std::move(name)), shape_(shape), event_columns_(std::move(event_columns)) {
  create_sql_ = "CREATE TABLE IF NOT EXISTS " + quote_identifier(name_) +
                " (\n"
                "  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n"
                "  `uuid` CHAR(32) CHARACTER SET ascii NOT NULL,\n"
                "  `timestamp` VARBINARY(14) NULL,\n"
                "  `dt` DATETIME NULL,\n";
  if (shape_ == TableShape::kCapsule) {
    create_sql_ +=
        "  `wiki` VARBINARY(1024) NULL,\n"
        "  `webHost` VARBINARY(1024) NULL,\n"
        "  `userAgent` VARBINARY(1024) NULL,\n";
  }
  for (const auto& c : event_columns_) {
    create_sql_ +=
        "  " + quote_identifier(c.name) + " " + std::string(sql_type(c.type)) + " NULL,\n";
  }
  create_sql_ +=
      "  UNIQUE KEY `ix_uuid` (`uuid`),\n"
      "  KEY `ix_timestamp` (`timestamp`)\n"
      ") ENGINE=InnoDB DEFAULT CHARSET=binary";

  column_list_ = "(";
  const auto fixed = fixed_columns();
  for (size_t i = 0; i < fixed.size(); ++i) {
    column_list_ += (i ? "," : "") + quote_identifier(fixed[i]);
  }
  for (const auto& c : event_columns_) column_list_ += "," + quote_identifier(c.name);
  column_list_ += ")";
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic pop
#endif

std::span<const std::string_view> TableLayout::fixed_columns() const {
  if (shape_ == TableShape::kEventPlatform) return kEventPlatformFixedColumns;
  return kFixedColumns;
}

std::string TableLayout::add_columns_sql(const std::vector<Column>& columns) const {
  std::string sql = "ALTER TABLE " + quote_identifier(name_);
  for (size_t i = 0; i < columns.size(); ++i) {
    sql += (i ? ", " : " ") + std::string("ADD COLUMN IF NOT EXISTS ") +
           quote_identifier(columns[i].name) + " " + std::string(sql_type(columns[i].type)) +
           " NULL";
  }
  return sql;
}

namespace {

enum class Family { kText, kInteger, kReal, kDateTime, kOther };

Family family_of(std::string_view data_type) {
  static const std::set<std::string_view> text = {
      "char",     "varchar",  "binary", "varbinary",  "tinyblob", "blob", "mediumblob",
      "longblob", "tinytext", "text",   "mediumtext", "longtext", "json"};
  static const std::set<std::string_view> integer = {"tinyint", "smallint", "mediumint",
                                                     "int",     "integer",  "bigint"};
  static const std::set<std::string_view> real = {"float", "double", "real", "decimal"};
  if (text.contains(data_type)) return Family::kText;
  if (integer.contains(data_type)) return Family::kInteger;
  if (real.contains(data_type)) return Family::kReal;
  if (data_type == "datetime" || data_type == "timestamp") return Family::kDateTime;
  return Family::kOther;
}

/// The families a column of `type` takes: a boolean or an integer goes into any integer
/// column (or a decimal), a number into a floating point or decimal one.
bool takes(ColumnType type, Family f) {
  switch (type) {
    case ColumnType::kBoolean:
    case ColumnType::kInteger:
      return f == Family::kInteger || f == Family::kReal;
    case ColumnType::kNumber:
      return f == Family::kReal;
    case ColumnType::kString:
    case ColumnType::kJson:
      return f == Family::kText;
  }
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string check_layout(const TableLayout& layout, const std::vector<ExistingColumn>& existing,
                         std::vector<Column>* missing) {
  std::map<std::string, const ExistingColumn*> by_name;
  for (const auto& c : existing) by_name.emplace(lower(c.name), &c);
  std::set<std::string> written;
  auto expect = [&](std::string_view name, bool ok_family(Family),
                    std::string_view ours) -> std::string {
    const auto it = by_name.find(lower(name));
    written.insert(lower(name));
    if (it == by_name.end()) return "column `" + std::string(name) + "` is missing";
    if (!ok_family(family_of(it->second->data_type))) {
      return "column `" + std::string(name) + "` is " + it->second->data_type +
             ", where Sluice writes " + std::string(ours);
    }
    return "";
  };
  static constexpr auto text = [](Family f) { return f == Family::kText; };
  static constexpr auto date_time = [](Family f) { return f == Family::kDateTime; };
  for (const auto name : layout.fixed_columns()) {
    const bool is_dt = name == "dt";
    if (auto problem = expect(name, is_dt ? +date_time : +text, is_dt ? "DATETIME" : "text");
        !problem.empty()) {
      return problem;
    }
  }
  for (const auto& c : layout.event_columns()) {
    const auto it = by_name.find(lower(c.name));
    written.insert(lower(c.name));
    if (it == by_name.end() && missing != nullptr) {
      missing->push_back(c);
      continue;
    }
    if (it == by_name.end()) return "column `" + c.name + "` is missing";
    if (!takes(c.type, family_of(it->second->data_type))) {
      return "column `" + c.name + "` is " + it->second->data_type + ", where Sluice writes " +
             std::string(sql_type(c.type));
    }
  }
  for (const auto& c : existing) {
    if (written.contains(lower(c.name))) continue;
    if (!c.nullable && !c.has_default && !c.filled_by_server) {
      return "column `" + c.name + "` is NOT NULL without a default: Sluice cannot fill it";
    }
  }
  return "";
}

}  // namespace sluice::storage
