#pragma once
/// Time conversions for capsules: epoch seconds or milliseconds and ISO-8601 `dt` strings into
/// MediaWiki's `YYYYMMDDHHMMSS` (UTC) and MariaDB's DATETIME text. Pure functions.

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::ingest {

/// Epoch values above this are milliseconds (EventLogging's rule).
inline constexpr double kMillisecondsThreshold = 1e12;
/// Largest epoch second accepted: 9999-12-31 23:59:59 UTC.
inline constexpr int64_t kMaxEpochSeconds = 253402300799;

/// Seconds since the epoch from a capsule `timestamp` (seconds, or ms when > 1e12);
/// nullopt when negative, not finite or past year 9999.
std::optional<int64_t> epoch_seconds_from_timestamp(double value);

/// Seconds since the epoch from an ISO-8601 date-time: `YYYY-MM-DD[T ]HH:MM:SS[.fff][Z|±HH[:]MM]`.
/// No zone means UTC. nullopt when malformed or out of range.
std::optional<int64_t> epoch_seconds_from_iso8601(std::string_view text);

/// Writes `YYYYMMDDHHMMSS` (14 chars) for an epoch second into out[14].
void format_mediawiki(int64_t epoch_seconds, char* out);
/// Writes `YYYY-MM-DD HH:MM:SS` (19 chars) for an epoch second into out[19].
void format_datetime(int64_t epoch_seconds, char* out);

}  // namespace sluice::ingest
