#pragma once
/// The encoded form of rows in a batch: MariaDB's LOAD DATA default text format — fields
/// separated by TAB, rows ended by LF, backslash escapes, NULL written as \N — appended to a
/// caller-owned buffer without per-field allocation. `for_each_field` reads it back.

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sluice::storage {

class RowEncoder {
 public:
  explicit RowEncoder(std::string& out) : out_(out) {}

  void null() {
    separate();
    out_.append("\\N", 2);
  }
  /// Arbitrary bytes, escaped.
  void text(std::string_view bytes) {
    separate();
    size_t run = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
      const char e = escape_of(bytes[i]);
      if (e == 0) continue;
      out_.append(bytes.data() + run, i - run);
      out_.push_back('\\');
      out_.push_back(e);
      run = i + 1;
    }
    out_.append(bytes.data() + run, bytes.size() - run);
  }
  /// Text known to need no escaping (digits, a formatted date).
  void plain(std::string_view s) {
    separate();
    out_.append(s);
  }
  void integer(int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    plain(std::string_view(buf, r.ptr - buf));
  }
  void number(double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    plain(std::string_view(buf, r.ptr - buf));
  }
  void boolean(bool v) { plain(v ? "1" : "0"); }
  void end_row() {
    out_.push_back('\n');
    first_ = true;
  }

 private:
  static char escape_of(char c) {
    switch (c) {
      case '\\':
        return '\\';
      case '\t':
        return 't';
      case '\n':
        return 'n';
      case '\r':
        return 'r';
      case '\0':
        return '0';
      default:
        return 0;
    }
  }
  void separate() {
    if (!first_) out_.push_back('\t');
    first_ = false;
  }

  std::string& out_;
  bool first_ = true;
};

/// Calls fn(bool is_null, std::string_view unescaped) for each field of one encoded row
/// (without its trailing LF). `scratch` holds unescaped bytes between calls.
template <typename Fn>
void for_each_field(std::string_view row, std::string& scratch, Fn&& fn) {
  size_t start = 0;
  while (start <= row.size()) {
    size_t end = start;
    scratch.clear();
    while (end < row.size() && row[end] != '\t') {
      if (row[end] == '\\' && end + 1 < row.size()) {
        const char e = row[++end];
        scratch.push_back(e == 't'   ? '\t'
                          : e == 'n' ? '\n'
                          : e == 'r' ? '\r'
                          : e == '0' ? '\0'
                                     : e);
      } else {
        scratch.push_back(row[end]);
      }
      ++end;
    }
    const std::string_view field = row.substr(start, end - start);
    fn(field == "\\N", std::string_view(scratch));
    start = end + 1;
  }
}

}  // namespace sluice::storage
