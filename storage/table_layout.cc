#include "storage/table_layout.h"

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
TableLayout::TableLayout(std::string name, std::vector<Column> event_columns)
    : name_(std::move(name)), event_columns_(std::move(event_columns)) {
  create_sql_ = "CREATE TABLE IF NOT EXISTS " + quote_identifier(name_) +
                " (\n"
                "  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n"
                "  `uuid` CHAR(32) CHARACTER SET ascii NOT NULL,\n"
                "  `timestamp` VARBINARY(14) NULL,\n"
                "  `dt` DATETIME NULL,\n"
                "  `wiki` VARBINARY(1024) NULL,\n"
                "  `webHost` VARBINARY(1024) NULL,\n"
                "  `userAgent` VARBINARY(1024) NULL,\n";
  for (const auto& c : event_columns_) {
    create_sql_ +=
        "  " + quote_identifier(c.name) + " " + std::string(sql_type(c.type)) + " NULL,\n";
  }
  create_sql_ +=
      "  UNIQUE KEY `ix_uuid` (`uuid`),\n"
      "  KEY `ix_timestamp` (`timestamp`)\n"
      ") ENGINE=InnoDB DEFAULT CHARSET=binary";

  column_list_ = "(";
  for (size_t i = 0; i < kFixedColumnCount; ++i) {
    column_list_ += (i ? "," : "") + quote_identifier(kFixedColumns[i]);
  }
  for (const auto& c : event_columns_) column_list_ += "," + quote_identifier(c.name);
  column_list_ += ")";
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic pop
#endif

}  // namespace sluice::storage
