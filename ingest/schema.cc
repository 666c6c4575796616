#include "ingest/schema.h"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

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

/// Leaves of an Event Platform event that fill its table's fixed columns rather than columns
/// of their own.
bool fills_fixed_column(const std::string& path) { return path == "dt" || path == "meta.id"; }

class Compiler {
 public:
  Compiler(Schema& schema, std::vector<storage::Column>& columns, storage::TableShape shape)
      : schema_(schema), columns_(columns), shape_(shape) {}

  /// Refuses a layout MariaDB could not create or that would lose data: two leaves whose
  /// flattened column names are equal ignoring case (`a_b` and `a.b`, `Value` and `value`:
  /// MariaDB's column names are case-insensitive), too many columns, rows too wide.
  Status check_columns() const {
    const bool capsule = shape_ == storage::TableShape::kCapsule;
    std::unordered_map<std::string, size_t> seen;
    size_t row_bytes = 8 + 32 + 15 + 5;  // id, uuid, timestamp, dt
    if (capsule) row_bytes += 3 * (storage::kMaxTextBytes + 2);  // wiki, webHost, userAgent
    constexpr size_t kFixed = ~size_t{0};
    for (const auto name : {"id", "uuid", "timestamp", "dt"}) seen.emplace(name, kFixed);
    size_t fixed_count = std::size(storage::kEventPlatformFixedColumns);
    if (capsule) fixed_count = storage::kFixedColumnCount;
    for (size_t i = 0; i < columns_.size(); ++i) {
      std::string folded = columns_[i].name;
      for (auto& c : folded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto [it, fresh] = seen.emplace(std::move(folded), i);
      if (!fresh && it->second == kFixed) {
        return Status::error(paths_[i] + " flattens to column " + columns_[i].name +
                             ", which every table has already (column names are "
                             "case-insensitive)");
      }
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
    row_bytes += (fixed_count + 1 + columns_.size() + 7) / 8;  // NULL flags
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
      f.path = path.empty() ? f.name : path + "." + f.name;
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
      const std::string column = column_prefix.empty() ? f.name : column_prefix + "_" + f.name;
      if ((f.types & ~kTypeNull) == kTypeObject && value["properties"].is_object()) {
        f.object = std::make_unique<ObjectRule>();
        if (auto st = object(value, *f.object, f.path, column); !st) return st;
      } else if (shape_ == storage::TableShape::kEventPlatform && fills_fixed_column(f.path)) {
        // Checked as declared; its value goes to the fixed columns (the decoder reads it).
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
  storage::TableShape shape_;
  std::vector<std::string> paths_;  ///< per column: the path of its field ("event.a.b")
};

/// Where a revision's file is under a root (schema_file).
fs::path revision_file(const std::string& root, std::string_view name, int64_t revision) {
  return fs::path(root) / schema_file(name, revision);
}

/// Why `newer` is not an additive change of `older` (a column of older's gone from newer, or of
/// another type there), or "" when it is.
std::string not_additive(const Schema& older, const Schema& newer) {
  std::unordered_map<std::string_view, storage::ColumnType> columns;
  for (const auto& c : newer.table->event_columns()) columns.emplace(c.name, c.type);
  for (const auto& c : older.table->event_columns()) {
    const auto it = columns.find(c.name);
    const std::string what = "incompatible_version: " + newer.name + " " +
                             format_version(newer.revision) + " is not an additive change of " +
                             format_version(older.revision) + ": column " + c.name;
    if (it == columns.end()) return what + " is gone (removed or renamed)";
    if (it->second != c.type) {
      return what + " is " + std::string(storage::sql_type(c.type)) + " in " +
             format_version(older.revision) + " and " + std::string(storage::sql_type(it->second)) +
             " in " + format_version(newer.revision);
    }
  }
  return "";
}

}  // namespace

std::string table_name_of(std::string_view name, int64_t revision) {
  if (!is_event_platform(name)) return storage::table_name_for(name, revision);
  return storage::table_name_for(name.substr(1), unpack_version(revision).major);
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
  // A capsule's schema describes its `event`; an Event Platform one the whole event.
  const bool capsule = !is_event_platform(name);
  const auto shape = capsule ? storage::TableShape::kCapsule : storage::TableShape::kEventPlatform;
  Compiler compiler(*schema, columns, shape);
  const std::string top = capsule ? "event" : "";
  if (auto st = compiler.object(doc, schema->root, top, top); !st) return st;
  if (auto st = compiler.check_columns(); !st) return st;
  std::string table = table_name_of(name, revision);
  if (table.size() > kMaxColumnName) {
    return Status::error("table name " + bounded(table, storage::kMaxQuotedBytes) +
                         " is longer than MariaDB's " + std::to_string(kMaxColumnName) +
                         " characters");
  }
  schema->table =
      std::make_unique<storage::TableLayout>(std::move(table), std::move(columns), shape);
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
    entry.error = "unknown_revision: " + describe_schema(name, revision);
    entry.absent = true;
    return entry;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto compiled = compile_schema(name, revision, text.str());
  if (!compiled) {
    entry.error = "unknown_revision: " + describe_schema(name, revision) +
                  " has an invalid schema file (" + compiled.status().message() + ")";
    bound(entry.error, storage::kMaxReasonBytes);
    return entry;
  }
  entry.schema = std::move(compiled).value();
  return entry;
}

SchemaRegistry::Entry SchemaRegistry::fetch(std::string_view name, int64_t revision) {
  Entry entry;
  const std::string what = describe_schema(name, revision);
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
      entry.fetched_text = std::move(answer.text);  // kept once admitted (find)
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
  if (entry.schema) {
    // A table holds one schema's rows (names that differ only outside [A-Za-z0-9] map to
    // one table); an Event Platform version joins its major's family, or is refused.
    auto refused = claim_table(*entry.schema);
    if (refused.empty() && is_event_platform(name)) refused = admit(*entry.schema);
    if (!refused.empty()) {
      entry.schema.reset();
      entry.error = std::move(refused);
      bound(entry.error, storage::kMaxReasonBytes);
    } else if (!entry.fetched_text.empty()) {
      // Only what was admitted is kept: after a restart the cache gives the same verdicts.
      keep(name, revision, entry.fetched_text);
    }
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
  std::map<std::pair<std::string, int64_t>, Entry> platform;  // by title, then version
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::path& path = it->path();
    if (!it->is_regular_file() || path.extension() != ".json") continue;  // a fetch's .tmp
    const std::string folder = path.parent_path().lexically_relative(root).generic_string();
    const std::string stem = path.stem().string();
    // `<SchemaName>/<revision>.json`, or an Event Platform `<title>/<major.minor.patch>.json`.
    std::string name;
    int64_t revision = 0;
    const auto [end, err] = std::from_chars(stem.data(), stem.data() + stem.size(), revision);
    if (err == std::errc() && end == stem.data() + stem.size() && it.depth() == 1) {
      name = folder;
    } else if (const auto version = parse_version(stem); version && it.depth() >= 1) {
      name = "/" + folder;
      revision = *version;
    } else {
      return Status::error(path.string() +
                           ": file name must be <revision>.json (in <SchemaName>/) or "
                           "<major.minor.patch>.json (in the folders of an Event Platform title)");
    }
    Entry e = load(root, name, revision);
    if (!e.schema) return Status::error(path.string() + ": " + e.error);
    ++count;
    if (is_event_platform(name)) platform.emplace(std::make_pair(name, revision), std::move(e));
  }
  if (ec) return Status::error(root + ": " + ec.message());
  // The versions of each title's major as the service admits them, oldest first: one that is
  // not an additive change of those before it is named here rather than dead-lettered later.
  std::map<std::string, Family> families;
  for (auto& [id, e] : platform) {
    Family& family = families[id.first + "\0" +
                              std::to_string(unpack_version(id.second).major)];
    if (auto refused = join(family, *e.schema); !refused.empty()) {
      return Status::error(root + schema_file(id.first, id.second).insert(0, "/") + ": " +
                           refused);
    }
  }
  return count;
}

std::string SchemaRegistry::claim_table(const Schema& schema) {
  // Owner: a capsule revision, or an Event Platform title (its versions share the table).
  std::string owner = is_event_platform(schema.name)
                          ? schema.name
                          : describe_schema(schema.name, schema.revision);
  const auto [it, fresh] = table_owners_.emplace(schema.table->name(), owner);
  if (fresh || it->second == owner) return "";
  return "unknown_schema: " + describe_schema(schema.name, schema.revision) +
         " would be written to table " + schema.table->name() + ", which holds " + it->second +
         " already (names that differ only in characters outside [A-Za-z0-9] share a table)";
}

std::string SchemaRegistry::admit(Schema& schema) {
  const int64_t major = unpack_version(schema.revision).major;
  std::string key(schema.name);
  key += '\0';
  key += std::to_string(major);
  if (const auto it = families_.find(key); it != families_.end()) return join(it->second, schema);
  Family& family = families_[key];
  // Met for the first time: the versions of this major already on disk join it too, all in
  // version order, so what is refused does not depend on which version came first.
  std::map<int64_t, const std::string*> found;
  for (const std::string* root : {&cache_root_, &root_}) {  // schemas.path wins
    if (root->empty()) continue;
    std::error_code ec;
    const fs::path folder = fs::path(*root) / std::string_view(schema.name).substr(1);
    for (auto it = fs::directory_iterator(folder, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      const fs::path& file = it->path();
      if (file.extension() != ".json") continue;
      const auto version = parse_version(file.stem().string());
      if (version && *version != schema.revision && unpack_version(*version).major == major) {
        found[*version] = root;
      }
    }
  }
  std::string refused;
  bool joined = false;
  for (const auto& [revision, root] : found) {
    if (!joined && schema.revision < revision) {
      refused = join(family, schema);
      joined = true;
    }
    Entry e = load(*root, schema.name, revision);
    if (!e.schema || !join(family, *e.schema).empty()) continue;  // met again if named
    ++(root == &root_ ? origins_.from_path : origins_.from_cache);
    schemas_[schema.name][revision] = std::move(e.schema);
  }
  return joined ? refused : join(family, schema);
}

std::string SchemaRegistry::join(Family& family, Schema& schema) {
  for (const Schema* other : family.versions) {
    const bool older = other->revision < schema.revision;
    if (auto why = older ? not_additive(*other, schema) : not_additive(schema, *other);
        !why.empty()) {
      return why;
    }
  }
  const auto at = std::lower_bound(
      family.versions.begin(), family.versions.end(), schema.revision,
      [](const Schema* s, int64_t revision) { return s->revision < revision; });
  family.versions.insert(at, &schema);
  // The table's columns: those it had, then this version's new ones, in its order.
  std::vector<storage::Column> columns;
  // Names viewed in the layout (which lives on), not in `columns`, which grows below.
  std::unordered_set<std::string_view> have;
  if (!family.layouts.empty()) {
    columns = family.layouts.back()->event_columns();
    for (const auto& c : family.layouts.back()->event_columns()) have.insert(c.name);
  }
  const size_t before = columns.size();
  for (const auto& c : schema.table->event_columns()) {
    if (!have.contains(c.name)) columns.push_back(c);
  }
  if (family.layouts.empty() || columns.size() > before) {
    family.layouts.push_back(std::make_unique<storage::TableLayout>(
        schema.table->name(), std::move(columns), storage::TableShape::kEventPlatform));
  }
  const storage::TableLayout* table = family.layouts.back().get();
  for (Schema* version : family.versions) {
    std::unordered_map<std::string_view, int> own;
    const auto& mine = version->table->event_columns();
    for (size_t i = 0; i < mine.size(); ++i) own.emplace(mine[i].name, static_cast<int>(i));
    version->grown = table;
    version->cell_of.clear();
    for (const auto& c : table->event_columns()) {
      const auto it = own.find(c.name);
      version->cell_of.push_back(it == own.end() ? -1 : it->second);
    }
  }
  return "";
}

std::vector<const Schema*> SchemaRegistry::versions_of(std::string_view title,
                                                        int64_t major) const {
  std::string key(title);
  key += '\0';
  key += std::to_string(major);
  const auto it = families_.find(key);
  if (it == families_.end()) return {};
  return {it->second.versions.begin(), it->second.versions.end()};
}

}  // namespace sluice::ingest
