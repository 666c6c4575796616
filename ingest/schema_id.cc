#include "ingest/schema_id.h"

#include <charconv>

namespace sluice::ingest {
namespace {

bool valid_segment(std::string_view s) {
  if (s.empty() || s.size() > 200 || s.front() == '.') return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string format_version(int64_t revision) {
  const Version v = unpack_version(revision);
  return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
}

std::optional<int64_t> parse_version(std::string_view text) {
  int64_t parts[3] = {0, 0, 0};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
    if (p == end || *p < '0' || *p > '9') return std::nullopt;
    const auto r = std::from_chars(p, end, parts[i]);
    if (r.ec != std::errc() || parts[i] > kMaxVersionPart) return std::nullopt;
    p = r.ptr;
  }
  if (p != end) return std::nullopt;
  return pack_version({parts[0], parts[1], parts[2]});
}

std::optional<SchemaUri> parse_schema_uri(std::string_view uri) {
  if (uri.ends_with(".json")) uri.remove_suffix(5);
  const auto slash = uri.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const auto version = parse_version(uri.substr(slash + 1));
  if (!version) return std::nullopt;
  const std::string_view title = uri.substr(0, slash);
  if (!valid_schema_name(title) || !is_event_platform(title)) return std::nullopt;
  return SchemaUri{title, *version};
}

bool valid_schema_name(std::string_view name) {
  if (!is_event_platform(name)) return valid_segment(name);
  if (name.size() > 512) return false;
  name.remove_prefix(1);
  while (true) {
    const auto slash = name.find('/');
    if (!valid_segment(name.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    name.remove_prefix(slash + 1);
  }
}

std::string schema_file(std::string_view name, int64_t revision) {
  if (is_event_platform(name)) {
    return std::string(name.substr(1)) + "/" + format_version(revision) + ".json";
  }
  return std::string(name) + "/" + std::to_string(revision) + ".json";
}

std::string describe_schema(std::string_view name, int64_t revision) {
  if (is_event_platform(name)) return std::string(name) + " " + format_version(revision);
  return std::string(name) + " revision " + std::to_string(revision);
}

}  // namespace sluice::ingest
