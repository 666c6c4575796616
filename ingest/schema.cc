#include "ingest/schema.h"

#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::ingest {
namespace {

namespace fs = std::filesystem;
using simdjson::dom::element;
using simdjson::dom::element_type;

/// Column names longer than this are refused when the schema is compiled (MariaDB's limit).
constexpr size_t kMaxColumnName = 64;

Result<uint8_t> parse_type_name(std::string_view t, const std::string& path) {
  if (t == "null") return uint8_t{kTypeNull};
  if (t == "boolean") return uint8_t{kTypeBoolean};
  if (t == "integer") return uint8_t{kTypeInteger};
  if (t == "number") return uint8_t{kTypeNumber | kTypeInteger};
  if (t == "string") return uint8_t{kTypeString};
  if (t == "array") return uint8_t{kTypeArray};
  if (t == "object") return uint8_t{kTypeObject};
  if (t == "any") return uint8_t{kTypeAny};
  return Status::error(path + ": unknown type '" + std::string(t) + "'");
}

storage::ColumnType column_type_for(uint8_t types) {
  const uint8_t t = types & ~kTypeNull;
  if (t == kTypeBoolean) return storage::ColumnType::kBoolean;
  if (t == kTypeInteger) return storage::ColumnType::kInteger;
  if (t == (kTypeNumber | kTypeInteger)) return storage::ColumnType::kNumber;
  if (t == kTypeString) return storage::ColumnType::kString;
  return storage::ColumnType::kJson;
}

class Compiler {
 public:
  Compiler(Schema& schema, std::vector<storage::Column>& columns)
      : schema_(schema), columns_(columns) {}

  Status object(element node, ObjectRule& rule, const std::string& path,
                const std::string& column_prefix) {
    simdjson::dom::object props;
    std::vector<std::string_view> required_list;
    rule.path = path;
    if (node["required"].is_array()) {
      for (element r : node["required"].get_array()) {
        if (!r.is_string()) return Status::error(path + ": 'required' must list strings");
        required_list.push_back(r.get_string().value());
      }
    }
    if (auto ap = node["additionalProperties"]; ap.is_bool()) {
      rule.additional_allowed = ap.get_bool().value();
    }
    if (node["properties"].get(props) != simdjson::SUCCESS) return Status::ok();
    for (auto [key, value] : props) {
      FieldRule f;
      f.name = std::string(key);
      f.path = path + "." + f.name;
      f.index = schema_.field_count++;
      if (!value.is_object()) return Status::error(f.path + ": a property must be an object");
      if (auto req = value["required"]; req.is_bool()) f.required = req.get_bool().value();
      for (auto r : required_list) f.required = f.required || r == key;
      if (auto type = value["type"]; type.is_string()) {
        auto t = parse_type_name(type.get_string().value(), f.path);
        if (!t) return t.status();
        f.types = *t;
      } else if (type.is_array()) {
        f.types = 0;
        for (element t : type.get_array()) {
          if (!t.is_string()) return Status::error(f.path + ": 'type' must list strings");
          auto parsed = parse_type_name(t.get_string().value(), f.path);
          if (!parsed) return parsed.status();
          f.types |= *parsed;
        }
      }
      if (auto e = value["enum"]; e.is_array()) {
        f.has_enum = true;
        for (element v : e.get_array()) {
          if (v.is_string()) f.enum_strings.emplace_back(v.get_string().value());
          if (v.is_number()) f.enum_numbers.push_back(v.get_double().value());
          if (v.is_bool()) f.enum_bools.push_back(v.get_bool().value());
        }
      }
      const std::string column = column_prefix + "_" + f.name;
      if ((f.types & ~kTypeNull) == kTypeObject && value["properties"].is_object()) {
        f.object = std::make_unique<ObjectRule>();
        if (auto st = object(value, *f.object, f.path, column); !st) return st;
      } else {
        if (column.size() > kMaxColumnName) {
          return Status::error(f.path + ": column name '" + column + "' is longer than " +
                               std::to_string(kMaxColumnName) + " characters");
        }
        f.column = static_cast<int>(columns_.size());
        f.column_type = column_type_for(f.types);
        columns_.push_back({column, f.column_type});
      }
      rule.fields.push_back(std::move(f));
    }
    std::vector<std::string> names;
    for (const auto& f : rule.fields) names.push_back(f.name);
    rule.by_name.build(names);
    return Status::ok();
  }

 private:
  Schema& schema_;
  std::vector<storage::Column>& columns_;
};

}  // namespace

bool valid_schema_name(std::string_view name) {
  if (name.empty() || name.size() > 200 || name.front() == '.') return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Result<std::unique_ptr<Schema>> compile_schema(std::string_view name, int64_t revision,
                                               std::string_view json) {
  simdjson::dom::parser parser;
  element doc;
  if (auto err = parser.parse(json.data(), json.size()).get(doc); err) {
    return Status::error(std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  if (!doc.is_object()) return Status::error("a schema must be a JSON object");
  auto schema = std::make_unique<Schema>();
  schema->name = std::string(name);
  schema->revision = revision;
  std::vector<storage::Column> columns;
  Compiler compiler(*schema, columns);
  if (auto st = compiler.object(doc, schema->root, "event", "event"); !st) return st;
  schema->table = std::make_unique<storage::TableLayout>(storage::table_name_for(name, revision),
                                                         std::move(columns));
  return schema;
}

SchemaRegistry::SchemaRegistry(std::string root, const Clock& clock)
    : root_(std::move(root)), clock_(clock) {}

SchemaRegistry::Entry SchemaRegistry::load(std::string_view name, int64_t revision) {
  Entry entry;
  entry.checked_at = clock_.now();
  if (!valid_schema_name(name)) {
    entry.error = "unknown_schema: '" + std::string(name) + "' is not a valid schema name";
    return entry;
  }
  const fs::path dir = fs::path(root_) / std::string(name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    entry.error = "unknown_schema: " + std::string(name);
    return entry;
  }
  const fs::path file = dir / (std::to_string(revision) + ".json");
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    entry.error =
        "unknown_revision: " + std::string(name) + " revision " + std::to_string(revision);
    return entry;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto compiled = compile_schema(name, revision, text.str());
  if (!compiled) {
    entry.error = "unknown_revision: " + std::string(name) + " revision " +
                  std::to_string(revision) + " has an invalid schema file (" +
                  compiled.status().message() + ")";
    return entry;
  }
  entry.schema = std::move(compiled).value();
  return entry;
}

const Schema* SchemaRegistry::find(std::string_view name, int64_t revision, std::string& error) {
  if (last_ != nullptr && last_->revision == revision && last_->name == name) return last_;
  constexpr auto kRecheckUnknown = std::chrono::seconds(30);
  auto it = schemas_.find(name);
  if (it == schemas_.end()) it = schemas_.emplace(std::string(name), Revisions{}).first;
  auto& revisions = it->second.by_revision;
  auto rev = revisions.find(revision);
  if (rev == revisions.end() ||
      (!rev->second.schema && clock_.now() - rev->second.checked_at >= kRecheckUnknown)) {
    rev = revisions.insert_or_assign(revision, load(name, revision)).first;
  }
  if (!rev->second.schema) {
    error = rev->second.error;
    return nullptr;
  }
  last_ = rev->second.schema.get();
  return last_;
}

Result<size_t> SchemaRegistry::load_all() {
  std::error_code ec;
  if (!fs::is_directory(root_, ec))
    return Status::error("schemas.path '" + root_ + "' is not a folder");
  size_t count = 0;
  for (const auto& dir : fs::directory_iterator(root_)) {
    if (!dir.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (file.path().extension() != ".json") continue;
      const auto stem = file.path().stem().string();
      int64_t revision = 0;
      try {
        size_t used = 0;
        revision = std::stoll(stem, &used);
        if (used != stem.size()) throw std::invalid_argument(stem);
      } catch (const std::exception&) {
        return Status::error(file.path().string() + ": file name must be <revision>.json");
      }
      Entry e = load(dir.path().filename().string(), revision);
      if (!e.schema) return Status::error(file.path().string() + ": " + e.error);
      ++count;
    }
  }
  return count;
}

}  // namespace sluice::ingest
