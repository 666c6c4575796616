#pragma once
/// How a schema revision is named, found on disk and fetched, for both kinds of events:
/// - an EventLogging capsule names a schema and an integer revision: ("NavigationTiming",
///   12345), file `NavigationTiming/12345.json`;
/// - an Event Platform event names its schema by URI, `"$schema":
///   "/analytics/legacy/navigationtiming/1.2.0"`: the title ("/analytics/legacy/navigationtiming",
///   always with a leading '/') is the name, and the version is packed into the revision
///   (pack_version), file `analytics/legacy/navigationtiming/1.2.0.json` — the layout of the
///   Event Platform's schema repositories.
/// A name that starts with '/' is an Event Platform title; a capsule's never does.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::ingest {

struct Version {
  int64_t major = 0, minor = 0, patch = 0;
};

/// Each part below 2^20; the packed revisions of one title order as the versions do.
inline constexpr int64_t kMaxVersionPart = (int64_t{1} << 20) - 1;
constexpr int64_t pack_version(Version v) { return v.major << 40 | v.minor << 20 | v.patch; }
constexpr Version unpack_version(int64_t revision) {
  return {revision >> 40, (revision >> 20) & kMaxVersionPart, revision & kMaxVersionPart};
}
/// "1.2.0".
std::string format_version(int64_t revision);
/// "1.2.0" → its packed revision; nullopt when not three numbers each at most kMaxVersionPart.
std::optional<int64_t> parse_version(std::string_view text);

/// True for an Event Platform title (a name that starts with '/').
inline bool is_event_platform(std::string_view name) {
  return !name.empty() && name.front() == '/';
}

/// An Event Platform event's `$schema` split into its title and packed version:
/// "/analytics/legacy/navigationtiming/1.2.0" (or ".../1.2.0.json") → ("/analytics/legacy/
/// navigationtiming", pack_version({1, 2, 0})). nullopt when it has no such form.
struct SchemaUri {
  std::string_view title;
  int64_t revision = 0;
};
std::optional<SchemaUri> parse_schema_uri(std::string_view uri);

/// True when a name is safe to use as a folder (capsules: letters, digits, '_', '-', '.', not
/// starting with '.') or, for a title, as folders: '/'-separated segments of those.
bool valid_schema_name(std::string_view name);

/// Where a revision's file is, relative to a root: "<Name>/<revision>.json" or
/// "<title without its leading '/'>/<major.minor.patch>.json".
std::string schema_file(std::string_view name, int64_t revision);

/// For messages: "NavigationTiming revision 12345", "/analytics/legacy/navigationtiming 1.2.0".
std::string describe_schema(std::string_view name, int64_t revision);

}  // namespace sluice::ingest
