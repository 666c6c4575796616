#include "ingest/schema.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/logging.h"
#include "common/text.h"
#include "storage/batch.h"

namespace sluice::ingest {
namespace {

namespace fs = std::filesystem;
using simdjson::dom::element;
using simdjson::dom::element_type;

/// Column and table names longer than this are refused when the schema is compiled (MariaDB's
/// limit is 64 characters; bytes are counted, which is stricter for non-ASCII names).
constexpr size_t kMaxColumnName = 64;
/// InnoDB's limits on one table: columns, and bytes per row not counting BLOBs.
constexpr size_t kMaxColumns = 1000;
constexpr size_t kMaxRowBytes = 65535;
/// Unknown (name, revision) pairs remembered at once; beyond that the memory starts over.
constexpr size_t kMaxMisses = 1024;

/// Why MariaDB would refuse `name` as a column name, or "" when it takes it: no control
/// characters, no characters outside the Basic Multilingual Plane (identifiers are utf8mb3),
/// no trailing space.
std::string column_name_problem(std::string_view name) {
  if (name.empty() || name.back() == ' ') return "ends with a space";
  for (size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) return "holds a control character";
    const size_t n = utf8_sequence_length(name, i);
    if (n == 0) return "is not UTF-8";
    if (n == 4) return "holds a character outside the Basic Multilingual Plane";
    i += n;
  }
  return "";
}

/// Bytes a column takes in InnoDB's row-size limit.
size_t column_bytes(storage::ColumnType type) {
  switch (type) {
    case storage::ColumnType::kBoolean:
      return 1;
    case storage::ColumnType::kInteger:
    case storage::ColumnType::kNumber:
      return 8;
    case storage::ColumnType::kString:
    case storage::ColumnType::kJson:
      return storage::kMaxTextBytes + 2;
  }
  return storage::kMaxTextBytes + 2;
}

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

  /// Refuses a layout MariaDB could not create or that would lose data: two leaves whose
  /// flattened column names are equal ignoring case (`a_b` and `a.b`, `Value` and `value`:
  /// MariaDB's column names are case-insensitive), too many columns, rows too wide.
  Status check_columns() const {
    std::unordered_map<std::string, size_t> seen;
    size_t row_bytes = 8 + 32 + 15 + 5 + 3 * (storage::kMaxTextBytes + 2);  // id .. userAgent
    for (size_t i = 0; i < columns_.size(); ++i) {
      std::string folded = columns_[i].name;
      for (auto& c : folded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto [it, fresh] = seen.emplace(std::move(folded), i);
      if (!fresh) {
        return Status::error(paths_[it->second] + " and " + paths_[i] +
                             " collide: both flatten to column " + columns_[i].name +
                             " (column names are case-insensitive)");
      }
      row_bytes += column_bytes(columns_[i].type);
    }
    if (columns_.size() > kMaxColumns) {
      return Status::error("too many leaves: " + std::to_string(columns_.size()) +
                           " columns, MariaDB takes at most " + std::to_string(kMaxColumns));
    }
    row_bytes += (storage::kFixedColumnCount + 1 + columns_.size() + 7) / 8;  // NULL flags
    if (row_bytes > kMaxRowBytes) {
      return Status::error("the table's rows could take " + std::to_string(row_bytes) +
                           " bytes, beyond MariaDB's limit of " + std::to_string(kMaxRowBytes) +
                           " (each string or array leaf takes " +
                           std::to_string(storage::kMaxTextBytes + 2) + ")");
    }
    return Status::ok();
  }

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
          return Status::error(bounded(f.path, storage::kMaxQuotedBytes) + ": column name '" +
                               bounded(column, storage::kMaxQuotedBytes) + "' is longer than " +
                               std::to_string(kMaxColumnName) + " characters");
        }
        if (const auto problem = column_name_problem(column); !problem.empty()) {
          return Status::error(f.path + ": column name '" + column + "' " + problem);
        }
        f.column = static_cast<int>(columns_.size());
        f.column_type = column_type_for(f.types);
        columns_.push_back({column, f.column_type});
        paths_.push_back(f.path);
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
  std::vector<std::string> paths_;  ///< per column: the path of its field ("event.a.b")
};

/// Where a revision's file is under a root: `<root>/<SchemaName>/<revision>.json`.
fs::path revision_file(const std::string& root, std::string_view name, int64_t revision) {
  return fs::path(root) / std::string(name) / (std::to_string(revision) + ".json");
}

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
  if (auto st = compiler.check_columns(); !st) return st;
  std::string table = storage::table_name_for(name, revision);
  if (table.size() > kMaxColumnName) {
    return Status::error("table name " + bounded(table, storage::kMaxQuotedBytes) +
                         " is longer than MariaDB's " + std::to_string(kMaxColumnName) +
                         " characters");
  }
  schema->table = std::make_unique<storage::TableLayout>(std::move(table), std::move(columns));
  return schema;
}

SchemaRegistry::SchemaRegistry(std::string root, const Clock& clock)
    : root_(std::move(root)), clock_(clock) {}

void SchemaRegistry::use_repository(SchemaSource* source, std::string cache_root) {
  source_ = source;
  cache_root_ = std::move(cache_root);
}

SchemaRegistry::Entry SchemaRegistry::load(const std::string& root, std::string_view name,
                                           int64_t revision) const {
  Entry entry;
  if (!valid_schema_name(name)) {
    entry.error = "unknown_schema: '" + bounded(name, storage::kMaxQuotedBytes) +
                  "' is not a valid schema name";
    return entry;
  }
  const fs::path file = revision_file(root, name, revision);
  std::error_code ec;
  if (!fs::is_directory(file.parent_path(), ec)) {
    entry.error = "unknown_schema: " + std::string(name);
    entry.absent = true;
    return entry;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    entry.error =
        "unknown_revision: " + std::string(name) + " revision " + std::to_string(revision);
    entry.absent = true;
    return entry;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto compiled = compile_schema(name, revision, text.str());
  if (!compiled) {
    entry.error = "unknown_revision: " + std::string(name) + " revision " +
                  std::to_string(revision) + " has an invalid schema file (" +
                  compiled.status().message() + ")";
    bound(entry.error, storage::kMaxReasonBytes);
    return entry;
  }
  entry.schema = std::move(compiled).value();
  return entry;
}

SchemaRegistry::Entry SchemaRegistry::fetch(std::string_view name, int64_t revision) {
  Entry entry;
  const std::string what = std::string(name) + " revision " + std::to_string(revision);
  const std::string url = source_->url_for(name, revision);
  auto answer = source_->ask(name, revision);
  switch (answer.state) {
    case SchemaSource::State::kPending:
      entry.pending = true;
      entry.retry_at = answer.retry_at;
      entry.error = "schema_pending: " + what + " is being fetched from " + url +
                    (answer.detail.empty() ? "" : " (last try: " + answer.detail + ")");
      break;
    case SchemaSource::State::kNotFound:
      entry.error = "unknown_revision: " + what + " is not at " + url + " (" + answer.detail + ")";
      break;
    case SchemaSource::State::kFound: {
      auto compiled = compile_schema(name, revision, answer.text);
      if (!compiled) {
        entry.error = "unknown_revision: " + what + " from " + url + " is not a valid schema (" +
                      compiled.status().message() + ")";
        break;
      }
      entry.schema = std::move(compiled).value();
      keep(name, revision, answer.text);
      ++origins_.fetched;
      break;
    }
  }
  bound(entry.error, storage::kMaxReasonBytes);
  return entry;
}

void SchemaRegistry::keep(std::string_view name, int64_t revision, const std::string& text) {
  // Whole or not at all, and durable before it counts: written to a temporary file, synced,
  // renamed, and the folder synced — a crash or a power cut leaves no half schema behind.
  const fs::path file = revision_file(cache_root_, name, revision);
  const fs::path dir = file.parent_path();
  const fs::path tmp = fs::path(file).concat(".tmp");
  std::error_code ec;
  fs::create_directories(dir, ec);
  auto failed = [&](const std::string& what) {
    logger("schemas")->warn("cannot keep {} in schemas.cache_path ({}): it is fetched again "
                            "after a restart",
                            file.string(), what);
  };
  if (ec) return failed(ec.message());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return failed(std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool written = done == text.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) return failed(std::strerror(errno));
  fs::rename(tmp, file, ec);
  if (ec) return failed(ec.message());
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

const Schema* SchemaRegistry::find(std::string_view name, int64_t revision, std::string& error) {
  pending_ = false;
  if (last_ != nullptr && last_->revision == revision && last_->name == name) return last_;
  if (const auto it = schemas_.find(name); it != schemas_.end()) {
    if (const auto rev = it->second.find(revision); rev != it->second.end()) {
      last_ = rev->second.get();
      return last_;
    }
  }
  if (!valid_schema_name(name)) {
    // Never remembered: names that cannot be folders are refused without a look at the disk.
    error = load(root_, name, revision).error;
    return nullptr;
  }
  constexpr auto kRecheckUnknown = std::chrono::seconds(30);
  std::string key(name);
  key += '\0';
  key += std::to_string(revision);
  const auto now = clock_.now();
  if (const auto miss = misses_.find(key);
      miss != misses_.end() && now - miss->second.checked_at < kRecheckUnknown) {
    error = miss->second.error;
    return nullptr;
  }
  // schemas.path first (deployed files win), then what earlier fetches kept, then the
  // repository.
  Entry entry = load(root_, name, revision);
  size_t* origin = &origins_.from_path;
  if (entry.absent && !cache_root_.empty()) {
    origin = &origins_.from_cache;
    entry = load(cache_root_, name, revision);
    if (!entry.schema && !entry.absent && source_ != nullptr) {
      // Kept once, unreadable now (a disk's fault, a hand's edit): fetched afresh.
      const auto file = revision_file(cache_root_, name, revision);
      logger("schemas")->warn("{} in schemas.cache_path is not a valid schema ({}): fetching it "
                              "again",
                              file.string(), entry.error);
      std::error_code ec;
      fs::remove(file, ec);
      entry.absent = true;
    }
  }
  if (entry.absent && source_ != nullptr) {
    origin = nullptr;  // counted by fetch
    entry = fetch(name, revision);
  }
  if (entry.pending) {
    // Not an answer: nothing is remembered, the event waits and asks again.
    pending_ = true;
    pending_retry_at_ = entry.retry_at;
    error = std::move(entry.error);
    return nullptr;
  }
  if (!entry.schema) {
    // Bounded whatever the input: a stream of distinct unknown names starts the memory over
    // rather than growing it.
    if (misses_.size() >= kMaxMisses && !misses_.contains(key)) misses_.clear();
    error = entry.error;
    misses_.insert_or_assign(std::move(key), Miss{std::move(entry.error), now});
    return nullptr;
  }
  if (origin != nullptr) ++*origin;
  misses_.erase(key);
  auto& slot = schemas_[std::string(name)][revision];
  slot = std::move(entry.schema);
  last_ = slot.get();
  return last_;
}

Result<size_t> SchemaRegistry::load_all() {
  std::error_code ec;
  if (!fs::is_directory(root_, ec))
    return Status::error("schemas.path '" + root_ + "' is not a folder");
  return load_all_under(root_);
}

Result<size_t> SchemaRegistry::load_cached() {
  std::error_code ec;
  if (cache_root_.empty() || !fs::is_directory(cache_root_, ec)) return size_t{0};
  return load_all_under(cache_root_);
}

Result<size_t> SchemaRegistry::load_all_under(const std::string& root) {
  size_t count = 0;
  for (const auto& dir : fs::directory_iterator(root)) {
    if (!dir.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (file.path().extension() != ".json") continue;  // a fetch's .tmp, never renamed
      const auto stem = file.path().stem().string();
      int64_t revision = 0;
      try {
        size_t used = 0;
        revision = std::stoll(stem, &used);
        if (used != stem.size()) throw std::invalid_argument(stem);
      } catch (const std::exception&) {
        return Status::error(file.path().string() + ": file name must be <revision>.json");
      }
      Entry e = load(root, dir.path().filename().string(), revision);
      if (!e.schema) return Status::error(file.path().string() + ": " + e.error);
      ++count;
    }
  }
  return count;
}

}  // namespace sluice::ingest
