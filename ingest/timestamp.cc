#include "ingest/timestamp.h"

#include <cmath>

namespace sluice::ingest {
namespace {

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, days since 1970-01-01).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

void put(char* out, int value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

struct Civil {
  int year, month, day, hour, minute, second;
};

Civil to_civil(int64_t epoch) {
  const int64_t days = epoch >= 0 ? epoch / 86400 : (epoch - 86399) / 86400;
  const int64_t secs = epoch - days * 86400;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  return {static_cast<int>(y),
          static_cast<int>(m),
          static_cast<int>(d),
          static_cast<int>(secs / 3600),
          static_cast<int>(secs % 3600 / 60),
          static_cast<int>(secs % 60)};
}

}  // namespace

std::optional<int64_t> epoch_seconds_from_timestamp(double value) {
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  if (value > kMillisecondsThreshold) value /= 1000.0;
  // Compare as a double first: casting an out-of-range double to an integer is undefined.
  if (value >= static_cast<double>(kMaxEpochSeconds) + 1) return std::nullopt;
  return static_cast<int64_t>(std::floor(value));
}

std::optional<int64_t> epoch_seconds_from_iso8601(std::string_view s) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
      !digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  static constexpr int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > kDaysIn[month - 1] || (month == 2 && day == 29 && !leap)) return std::nullopt;
  if (second == 60) second = 59;  // a leap second maps onto the second before it
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  int64_t offset_seconds = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      const int sign = s[pos] == '-' ? -1 : 1;
      int oh = 0, om = 0;
      if (!digits(s, pos + 1, 2, oh)) return std::nullopt;
      pos += 3;
      if (pos < s.size() && s[pos] == ':') ++pos;
      if (!digits(s, pos, 2, om)) return std::nullopt;
      pos += 2;
      if (oh > 23 || om > 59) return std::nullopt;
      offset_seconds = sign * (oh * 3600 + om * 60);
    }
  }
  if (pos != s.size()) return std::nullopt;
  const int64_t epoch =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
      hour * 3600 + minute * 60 + second - offset_seconds;
  if (epoch < 0 || epoch > kMaxEpochSeconds) return std::nullopt;
  return epoch;
}

void format_mediawiki(int64_t epoch_seconds, char* out) {
  const Civil c = to_civil(epoch_seconds);
  put(out, c.year, 4);
  put(out + 4, c.month, 2);
  put(out + 6, c.day, 2);
  put(out + 8, c.hour, 2);
  put(out + 10, c.minute, 2);
  put(out + 12, c.second, 2);
}

void format_datetime(int64_t epoch_seconds, char* out) {
  const Civil c = to_civil(epoch_seconds);
  put(out, c.year, 4);
  out[4] = '-';
  put(out + 5, c.month, 2);
  out[7] = '-';
  put(out + 8, c.day, 2);
  out[10] = ' ';
  put(out + 11, c.hour, 2);
  out[13] = ':';
  put(out + 14, c.minute, 2);
  out[16] = ':';
  put(out + 17, c.second, 2);
}

}  // namespace sluice::ingest
