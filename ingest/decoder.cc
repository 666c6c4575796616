#include "ingest/decoder.h"

#include <charconv>
#include <cstring>

#include "common/text.h"
#include "ingest/timestamp.h"
#include "storage/batch.h"
#include "storage/row_format.h"

namespace sluice::ingest {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using storage::kMaxTextBytes;

const char* json_type_name(element_type t) {
  switch (t) {
    case element_type::ARRAY:
      return "array";
    case element_type::OBJECT:
      return "object";
    case element_type::INT64:
    case element_type::UINT64:
      return "integer";
    case element_type::DOUBLE:
      return "number";
    case element_type::STRING:
      return "string";
    case element_type::BOOL:
      return "boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "unknown";
}

std::string expected_types(uint8_t types) {
  std::string out;
  auto add = [&](uint8_t bit, const char* name) {
    if ((types & bit) == 0) return;
    if (!out.empty()) out += " or ";
    out += name;
  };
  if ((types & kTypeNumber) != 0) {
    add(kTypeNumber, "number");
  } else {
    add(kTypeInteger, "integer");
  }
  add(kTypeBoolean, "boolean");
  add(kTypeString, "string");
  add(kTypeArray, "array");
  add(kTypeObject, "object");
  add(kTypeNull, "null");
  return out;
}

bool is_hex32(std::string_view s) {
  if (s.size() != 32) return false;
  for (const char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

/// Sets a dead-letter reason "<class>: <field>: <detail>". The field may come from the event
/// (an unexpected name of any length), so it is quoted at most kMaxQuotedBytes long, and the
/// whole reason fits sluice_dead_letter.reason.
bool fail(std::string& reason, const char* cls, std::string_view field, std::string_view detail) {
  reason.assign(cls);
  reason += ": ";
  if (field.size() > storage::kMaxQuotedBytes) {
    reason += bounded(field, storage::kMaxQuotedBytes);
  } else {
    reason += field;
  }
  if (!detail.empty()) {
    reason += ": ";
    reason += detail;
  }
  bound(reason, storage::kMaxReasonBytes);
  return false;
}

/// Whether a JSON number token (grammatically valid) is too large in magnitude for a double
/// (1e400) or, written as an integer, for 64 bits (2^64): simdjson refuses such documents with
/// NUMBER_ERROR, as it does numbers that are not numbers at all.
bool out_of_range(std::string_view token) {
  const bool integral = token.find_first_of(".eE") == std::string_view::npos;
  if (integral) {
    int64_t i = 0;
    uint64_t u = 0;
    const char* end = token.data() + token.size();
    if (std::from_chars(token.data(), end, i).ec == std::errc()) return false;
    if (token.front() != '-' && std::from_chars(token.data(), end, u).ec == std::errc()) {
      return false;
    }
    return true;
  }
  double d = 0;
  const auto r = std::from_chars(token.data(), token.data() + token.size(), d);
  if (r.ec != std::errc::result_out_of_range) return false;
  // Out of range is overflow (refused) or underflow (simdjson takes it as 0): tell them apart
  // by the decimal magnitude — digits before the point, plus the exponent.
  const auto e = token.find_first_of("eE");
  const std::string_view mantissa = token.substr(0, e);
  int64_t magnitude = 0;
  const auto dot = mantissa.find('.');
  const std::string_view whole =
      mantissa.substr(mantissa.front() == '-' ? 1 : 0,
                      dot == std::string_view::npos ? std::string_view::npos
                                                    : dot - (mantissa.front() == '-' ? 1 : 0));
  if (whole.find_first_not_of('0') != std::string_view::npos) {
    magnitude = static_cast<int64_t>(whole.size() - whole.find_first_not_of('0'));
  }
  if (e != std::string_view::npos) {
    int64_t exponent = 0;
    std::string_view digits = token.substr(e + 1);
    if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
    const auto er = std::from_chars(digits.data(), digits.data() + digits.size(), exponent);
    if (er.ec == std::errc::result_out_of_range) return digits.front() != '-';
    magnitude += exponent;
  }
  return magnitude > 0;
}

/// True for a token that follows JSON's number grammar:
/// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool json_number(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > from;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size();
}

/// After simdjson refused `json` for a number: finds the numbers that are valid JSON but out of
/// range, as byte ranges, and the path of the first ("event.ratio", "event.tags[1]"). A light
/// scan, not a validator: the caller re-parses with those numbers replaced to know whether the
/// rest is JSON. Only runs on that failure path.
void find_out_of_range_numbers(std::string_view json, std::vector<std::pair<size_t, size_t>>& found,
                               std::string& first_path) {
  struct Frame {
    bool object;
    bool expect_key;
    std::string_view key;
    size_t index;
  };
  constexpr size_t kMaxDepth = 1024;
  constexpr size_t kMaxFound = 64;
  std::vector<Frame> frames;
  auto path = [&] {
    std::string out;
    for (const auto& f : frames) {
      if (f.object) {
        if (!out.empty()) out += '.';
        out += bounded(f.key, 64);
      } else {
        out += "[" + std::to_string(f.index) + "]";
      }
    }
    return out.empty() ? std::string("message") : out;
  };
  size_t i = 0;
  while (i < json.size() && found.size() < kMaxFound) {
    const char c = json[i];
    if (c == '{' || c == '[') {
      if (frames.size() >= kMaxDepth) return;
      frames.push_back({c == '{', c == '{', {}, 0});
      ++i;
    } else if (c == '}' || c == ']') {
      if (!frames.empty()) frames.pop_back();
      ++i;
    } else if (c == ',') {
      if (!frames.empty()) {
        frames.back().expect_key = frames.back().object;
        ++frames.back().index;
      }
      ++i;
    } else if (c == '"') {
      size_t end = i + 1;
      while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
      if (!frames.empty() && frames.back().expect_key) {
        frames.back().key = json.substr(i + 1, std::min(end, json.size()) - i - 1);
        frames.back().expect_key = false;
      }
      i = end + 1;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t end = i;
      while (end < json.size() && std::strchr("+-.eE0123456789", json[end]) != nullptr &&
             json[end] != '\0') {
        ++end;
      }
      const std::string_view token = json.substr(i, end - i);
      if (json_number(token) && out_of_range(token)) {
        if (found.empty()) first_path = path();
        found.emplace_back(i, end - i);
      }
      i = end;
    } else {
      ++i;
    }
  }
}

std::string too_long_detail(size_t n) {
  return std::to_string(n) + " bytes, the column holds " + std::to_string(kMaxTextBytes);
}

}  // namespace

Decoder::Decoder(SchemaRegistry& registry) : registry_(registry) { scratch_.reserve(4096); }

void Decoder::to_json_cell(element value, Cell& cell) {
  const auto json = simdjson::minify(value);
  cell.kind = Cell::kScratch;
  cell.pos = static_cast<uint32_t>(scratch_.size());
  cell.len = static_cast<uint32_t>(json.size());
  scratch_ += json;
}

bool Decoder::check_value(element value, const FieldRule& f, std::string& reason) {
  const element_type type = value.type();
  Cell unused;  // an object with declared properties has no column of its own
  Cell& cell = f.column >= 0 ? cells_[static_cast<size_t>(f.column)] : unused;
  auto wrong_type = [&] {
    return fail(reason, "wrong_type", f.path,
                "expected " + expected_types(f.types) + ", got " + json_type_name(type));
  };
  switch (type) {
    case element_type::NULL_VALUE:
      if ((f.types & kTypeNull) == 0) return wrong_type();
      if (f.column >= 0) cell.kind = Cell::kNull;
      break;
    case element_type::BOOL: {
      if ((f.types & kTypeBoolean) == 0) return wrong_type();
      const bool b = value.get_bool().value_unsafe();
      if (f.has_enum &&
          std::find(f.enum_bools.begin(), f.enum_bools.end(), b) == f.enum_bools.end()) {
        return fail(reason, "invalid_value", f.path, "not one of the allowed values");
      }
      cell.kind = Cell::kBool;
      cell.b = b;
      break;
    }
    case element_type::INT64:
    case element_type::UINT64: {
      if ((f.types & (kTypeInteger | kTypeNumber)) == 0) return wrong_type();
      double as_double = 0;
      if (type == element_type::UINT64) {
        as_double = static_cast<double>(value.get_uint64().value_unsafe());
        if ((f.types & kTypeNumber) == 0) {
          return fail(reason, "invalid_value", f.path, "integer out of the BIGINT range");
        }
        cell.kind = Cell::kDouble;
        cell.d = as_double;
      } else {
        cell.kind = Cell::kInt;
        cell.i = value.get_int64().value_unsafe();
        as_double = static_cast<double>(cell.i);
      }
      if (f.has_enum && std::find(f.enum_numbers.begin(), f.enum_numbers.end(), as_double) ==
                            f.enum_numbers.end()) {
        return fail(reason, "invalid_value", f.path, "not one of the allowed values");
      }
      break;
    }
    case element_type::DOUBLE: {
      if ((f.types & kTypeNumber) == 0) return wrong_type();
      cell.kind = Cell::kDouble;
      cell.d = value.get_double().value_unsafe();
      if (f.has_enum &&
          std::find(f.enum_numbers.begin(), f.enum_numbers.end(), cell.d) == f.enum_numbers.end()) {
        return fail(reason, "invalid_value", f.path, "not one of the allowed values");
      }
      break;
    }
    case element_type::STRING: {
      if ((f.types & kTypeString) == 0) return wrong_type();
      const std::string_view s = value.get_string().value_unsafe();
      if (s.size() > kMaxTextBytes)
        return fail(reason, "too_long", f.path, too_long_detail(s.size()));
      if (f.has_enum &&
          std::find(f.enum_strings.begin(), f.enum_strings.end(), s) == f.enum_strings.end()) {
        std::string shown(s.substr(0, 64));
        return fail(reason, "invalid_value", f.path,
                    "'" + shown + "' is not one of the allowed values");
      }
      cell.kind = Cell::kText;
      cell.s = s;
      break;
    }
    case element_type::ARRAY:
    case element_type::OBJECT: {
      const bool is_array = type == element_type::ARRAY;
      if ((f.types & (is_array ? kTypeArray : kTypeObject)) == 0) return wrong_type();
      if (!is_array && f.object) {
        return validate_object(value.get_object().value_unsafe(), *f.object, reason);
      }
      to_json_cell(value, cell);
      if (cell.len > kMaxTextBytes)
        return fail(reason, "too_long", f.path, too_long_detail(cell.len));
      break;
    }
  }
  // A column of mixed or structured type stores the JSON text of whatever value it holds.
  if (f.column >= 0 && f.column_type == storage::ColumnType::kJson && cell.kind != Cell::kNull &&
      cell.kind != Cell::kScratch) {
    to_json_cell(value, cell);
    if (cell.len > kMaxTextBytes)
      return fail(reason, "too_long", f.path, too_long_detail(cell.len));
  }
  if (f.column >= 0) cell.epoch = epoch_;
  return true;
}

bool Decoder::validate_object(simdjson::dom::object obj, const ObjectRule& rule,
                              std::string& reason) {
  for (auto [key, value] : obj) {
    const int index = rule.by_name.find(key);
    if (index < 0) {
      if (rule.additional_allowed) continue;
      const std::string field(key.substr(0, storage::kMaxQuotedBytes + 4));
      return fail(reason, "unexpected_field", rule.path.empty() ? field : rule.path + "." + field,
                  "not declared by the schema");
    }
    const FieldRule& f = rule.fields[static_cast<size_t>(index)];
    seen_[static_cast<size_t>(f.index)] = epoch_;
    if (!check_value(value, f, reason)) return false;
  }
  for (const auto& f : rule.fields) {
    if (f.required && seen_[static_cast<size_t>(f.index)] != epoch_) {
      return fail(reason, "missing_required", f.path, "");
    }
  }
  return true;
}

bool Decoder::number_out_of_range(std::string_view payload, std::string& reason) {
  std::vector<std::pair<size_t, size_t>> found;
  std::string path;
  find_out_of_range_numbers(payload, found, path);
  if (found.empty()) return false;
  // The document is JSON but for those numbers when it parses with each of them replaced.
  // (Built by appending, in order: GCC 12 raises a false -Wrestrict on std::string::replace.)
  std::string patched;
  patched.reserve(payload.size());
  size_t at = 0;
  for (const auto& [pos, len] : found) {
    patched.append(payload.substr(at, pos - at));
    patched.push_back('0');
    at = pos + len;
  }
  patched.append(payload.substr(at));
  simdjson::dom::element ignored;
  if (parser_.parse(patched).get(ignored) != simdjson::SUCCESS) return false;
  fail(reason, "invalid_value", path, "number out of range");
  return true;
}

const Schema* Decoder::decode(std::string_view payload, int64_t fallback_ms, std::string& reason) {
  ++epoch_;
  scratch_.clear();
  schema_ = nullptr;
  schema_pending_ = false;
  capsule_schema_ = {};
  capsule_revision_ = -1;
  element doc;
  if (auto err = parser_.parse(payload.data(), payload.size()).get(doc); err) {
    if (err == simdjson::NUMBER_ERROR && number_out_of_range(payload, reason)) return nullptr;
    fail(reason, "malformed_json", "message", simdjson::error_message(err));
    return nullptr;
  }
  simdjson::dom::object capsule;
  if (doc.get_object().get(capsule) != simdjson::SUCCESS) {
    fail(reason, "not_object", "message",
         std::string("the message is a JSON ") + json_type_name(doc.type()));
    return nullptr;
  }
  uuid_ = {};
  wiki_ = {};
  web_host_ = {};
  user_agent_ = Cell{};
  timestamp_ = -1;
  dt_ = -1;
  if (element uri; capsule["$schema"].get(uri) == simdjson::SUCCESS) {
    return decode_event_platform(capsule, uri, fallback_ms, reason);
  }
  return decode_capsule(capsule, fallback_ms, reason);
}

bool Decoder::read_time(simdjson::dom::object obj, std::string_view key, std::string_view field,
                        int64_t& out, std::string& reason) {
  element v;
  if (obj[key].get(v) != simdjson::SUCCESS) return true;  // absent: `out` stays as it is
  std::string_view iso;
  if (v.get_string().get(iso) != simdjson::SUCCESS) {
    return fail(reason, "wrong_type", field,
                std::string("expected string, got ") + json_type_name(v.type()));
  }
  const auto seconds = epoch_seconds_from_iso8601(iso);
  if (!seconds) return fail(reason, "invalid_value", field, "not an ISO-8601 date-time");
  out = *seconds;
  return true;
}

bool Decoder::read_user_agent(element value, std::string& reason) {
  if (value.is_string()) {
    user_agent_.kind = Cell::kText;
    user_agent_.s = value.get_string().value_unsafe();
    if (user_agent_.s.size() > kMaxTextBytes) {
      return fail(reason, "too_long", "userAgent", too_long_detail(user_agent_.s.size()));
    }
  } else if (value.is_object()) {
    to_json_cell(value, user_agent_);
    if (user_agent_.len > kMaxTextBytes) {
      return fail(reason, "too_long", "userAgent", too_long_detail(user_agent_.len));
    }
  } else if (!value.is_null()) {
    return fail(reason, "wrong_type", "userAgent",
                std::string("expected string or object, got ") + json_type_name(value.type()));
  }
  return true;
}

const Schema* Decoder::decode_capsule(simdjson::dom::object capsule, int64_t fallback_ms,
                                      std::string& reason) {
  std::string_view schema_name;
  int64_t revision = 0;
  bool has_schema = false, has_revision = false;
  element event;
  bool has_event = false;
  bool has_uuid = false, has_wiki = false;

  auto text_field = [&](element v, std::string_view name, std::string_view& out) {
    if (!v.is_string()) {
      return fail(reason, "wrong_type", name,
                  std::string("expected string, got ") + json_type_name(v.type()));
    }
    out = v.get_string().value_unsafe();
    if (out.size() > kMaxTextBytes)
      return fail(reason, "too_long", name, too_long_detail(out.size()));
    return true;
  };

  for (auto [key, value] : capsule) {
    if (key == "schema") {
      if (!text_field(value, "schema", schema_name)) return nullptr;
      capsule_schema_ = schema_name;
      has_schema = true;
    } else if (key == "revision") {
      if (!value.is_int64()) {
        fail(reason, "wrong_type", "revision",
             std::string("expected integer, got ") + json_type_name(value.type()));
        return nullptr;
      }
      revision = value.get_int64().value_unsafe();
      capsule_revision_ = revision;
      has_revision = true;
    } else if (key == "uuid") {
      if (!text_field(value, "uuid", uuid_)) return nullptr;
      if (!is_hex32(uuid_)) {
        fail(reason, "invalid_value", "uuid", "expected 32 hexadecimal characters");
        return nullptr;
      }
      has_uuid = true;
    } else if (key == "wiki") {
      if (!text_field(value, "wiki", wiki_)) return nullptr;
      has_wiki = true;
    } else if (key == "webHost") {
      if (!text_field(value, "webHost", web_host_)) return nullptr;
    } else if (key == "userAgent") {
      if (!read_user_agent(value, reason)) return nullptr;
    } else if (key == "timestamp") {
      if (!value.is_number()) {
        fail(reason, "wrong_type", "timestamp",
             std::string("expected number, got ") + json_type_name(value.type()));
        return nullptr;
      }
      const auto seconds = epoch_seconds_from_timestamp(value.get_double().value_unsafe());
      if (!seconds) {
        fail(reason, "invalid_value", "timestamp", "not an epoch time between 1970 and 9999");
        return nullptr;
      }
      timestamp_ = *seconds;
    } else if (key == "dt") {
      std::string_view dt;
      if (!text_field(value, "dt", dt)) return nullptr;
      const auto seconds = epoch_seconds_from_iso8601(dt);
      if (!seconds) {
        fail(reason, "invalid_value", "dt", "not an ISO-8601 date-time");
        return nullptr;
      }
      dt_ = *seconds;
    } else if (key == "event") {
      event = value;
      has_event = true;
    }
  }
  if (!has_schema) return fail(reason, "missing_required", "schema", ""), nullptr;
  if (!has_revision) return fail(reason, "missing_required", "revision", ""), nullptr;
  if (!has_uuid) return fail(reason, "missing_required", "uuid", ""), nullptr;
  if (!has_wiki) return fail(reason, "missing_required", "wiki", ""), nullptr;
  if (!has_event) return fail(reason, "missing_required", "event", ""), nullptr;
  if (!event.is_object()) {
    fail(reason, "wrong_type", "event",
         std::string("expected object, got ") + json_type_name(event.type()));
    return nullptr;
  }

  const Schema* schema = validate(schema_name, revision, event.get_object().value_unsafe(), reason);
  if (schema != nullptr && timestamp_ < 0) {
    timestamp_ = dt_ >= 0 ? dt_ : (fallback_ms >= 0 ? fallback_ms / 1000 : -1);
  }
  return schema;
}

const Schema* Decoder::validate(std::string_view name, int64_t revision,
                                simdjson::dom::object event, std::string& reason) {
  const Schema* schema = registry_.find(name, revision, reason);
  if (schema == nullptr) {
    schema_pending_ = registry_.pending();
    return nullptr;
  }
  if (seen_.size() < static_cast<size_t>(schema->field_count)) {
    seen_.resize(static_cast<size_t>(schema->field_count), 0);
  }
  const size_t columns = schema->table->event_columns().size();
  if (cells_.size() < columns) cells_.resize(columns);
  if (!validate_object(event, schema->root, reason)) return nullptr;
  schema_ = schema;
  return schema;
}

const Schema* Decoder::decode_event_platform(simdjson::dom::object event, element uri,
                                             int64_t fallback_ms, std::string& reason) {
  std::string_view text;
  if (uri.get_string().get(text) != simdjson::SUCCESS) {
    fail(reason, "wrong_type", "$schema",
         std::string("expected string, got ") + json_type_name(uri.type()));
    return nullptr;
  }
  const auto id = parse_schema_uri(text);
  if (!id) {
    fail(reason, "invalid_value", "$schema",
         "'" + bounded(text, storage::kMaxQuotedBytes) +
             "' is not a schema URI /<title>/<major>.<minor>.<patch>");
    return nullptr;
  }
  capsule_schema_ = id->title;
  capsule_revision_ = id->revision;
  simdjson::dom::object meta;
  if (element m; event["meta"].get(m) != simdjson::SUCCESS) {
    return fail(reason, "missing_required", "meta", ""), nullptr;
  } else if (m.get_object().get(meta) != simdjson::SUCCESS) {
    fail(reason, "wrong_type", "meta",
         std::string("expected object, got ") + json_type_name(m.type()));
    return nullptr;
  }
  // meta.id, a UUID, is the row's uuid: 32 hexadecimal digits, its dashes dropped.
  std::string_view meta_id;
  if (element v; meta["id"].get(v) != simdjson::SUCCESS) {
    return fail(reason, "missing_required", "meta.id", ""), nullptr;
  } else if (v.get_string().get(meta_id) != simdjson::SUCCESS) {
    fail(reason, "wrong_type", "meta.id",
         std::string("expected string, got ") + json_type_name(v.type()));
    return nullptr;
  }
  size_t n = 0;
  for (size_t i = 0; i < meta_id.size() && n <= sizeof uuid_buf_; ++i) {
    const bool dash = meta_id.size() == 36 && (i == 8 || i == 13 || i == 18 || i == 23);
    if (dash && meta_id[i] == '-') continue;
    // Lower case, as capsules' uuids are: one event, one spelling (replay compares them).
    const char c = meta_id[i];
    if (n < sizeof uuid_buf_) uuid_buf_[n] = c >= 'A' && c <= 'F' ? static_cast<char>(c + 32) : c;
    ++n;
  }
  uuid_ = std::string_view(uuid_buf_, sizeof uuid_buf_);
  if (n != sizeof uuid_buf_ || !is_hex32(uuid_)) {
    uuid_ = {};
    fail(reason, "invalid_value", "meta.id", "expected a UUID");
    return nullptr;
  }
  // The row's time: `dt` (when the event happened), else `meta.dt` (when it was received).
  int64_t received = -1;
  if (!read_time(event, "dt", "dt", dt_, reason) ||
      !read_time(meta, "dt", "meta.dt", received, reason)) {
    return nullptr;
  }
  timestamp_ = dt_ >= 0 ? dt_ : received;
  const Schema* schema = validate(id->title, id->revision, event, reason);
  if (schema != nullptr && timestamp_ < 0 && fallback_ms >= 0) timestamp_ = fallback_ms / 1000;
  return schema;
}

void Decoder::encode_row(std::string& out) const {
  storage::RowEncoder row(out);
  row.plain(uuid_);
  if (timestamp_ >= 0) {
    char buf[14];
    format_mediawiki(timestamp_, buf);
    row.plain(std::string_view(buf, sizeof buf));
  } else {
    row.null();
  }
  if (dt_ >= 0) {
    char buf[19];
    format_datetime(dt_, buf);
    row.plain(std::string_view(buf, sizeof buf));
  } else {
    row.null();
  }
  auto put = [&](const Cell& c) {
    switch (c.kind) {
      case Cell::kNull:
        row.null();
        break;
      case Cell::kBool:
        row.boolean(c.b);
        break;
      case Cell::kInt:
        row.integer(c.i);
        break;
      case Cell::kDouble:
        row.number(c.d);
        break;
      case Cell::kText:
        row.text(c.s);
        break;
      case Cell::kScratch:
        row.text(std::string_view(scratch_).substr(c.pos, c.len));
        break;
    }
  };
  const storage::TableLayout& table = *schema_->layout();
  if (table.shape() == storage::TableShape::kCapsule) {
    row.text(wiki_);
    if (web_host_.data() != nullptr) {
      row.text(web_host_);
    } else {
      row.null();
    }
    put(user_agent_);
  }
  const size_t columns = table.event_columns().size();
  const bool mapped = !schema_->cell_of.empty();
  for (size_t i = 0; i < columns; ++i) {
    // A grown table's columns map to this version's own; those it lacks are NULL.
    const int cell = mapped ? schema_->cell_of[i] : static_cast<int>(i);
    if (cell >= 0 && cells_[static_cast<size_t>(cell)].epoch == epoch_) {
      put(cells_[static_cast<size_t>(cell)]);
    } else {
      row.null();
    }
  }
  row.end_row();
}

}  // namespace sluice::ingest
