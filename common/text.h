#pragma once
/// Text that comes from outside (event fields, schema names, server messages) on its way into
/// bounded places: columns of a fixed width, log lines; and numbers for people. Pure functions;
/// safe from any thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

/// What a cut text ends with: U+2026 HORIZONTAL ELLIPSIS (3 bytes).
inline constexpr std::string_view kCutMarker = "\xe2\x80\xa6";

/// The length of the longest prefix of `text` of at most `max_bytes` bytes that does not end
/// inside a UTF-8 sequence (bytes that are not UTF-8 count as characters of their own).
size_t utf8_prefix_length(std::string_view text, size_t max_bytes);

/// `text` itself when it fits in `max_bytes`; otherwise a prefix cut at a character boundary,
/// followed by kCutMarker, of at most `max_bytes` bytes in all.
/// Precondition: max_bytes >= kCutMarker.size().
std::string bounded(std::string_view text, size_t max_bytes);
/// In place: `text` cut as `bounded` does.
void bound(std::string& text, size_t max_bytes);

/// Length of the valid UTF-8 sequence starting at `text[pos]` (1 to 4), or 0 when the bytes
/// there are not one (truncated, overlong, a surrogate, beyond U+10FFFF, a stray continuation).
size_t utf8_sequence_length(std::string_view text, size_t pos);

/// Appends `text` for a line of a text-format log: control characters (C0, DEL) and bytes that
/// are not UTF-8 become escapes (`\n`, `\t`, `\r`, `\\`, `\xNN`), so untrusted text can neither
/// start a line of its own nor hide what it is. Printable UTF-8 is kept as it is.
void append_log_escaped(std::string& out, std::string_view text);

/// A count for people: 1234567 -> "1,234,567".
std::string thousands(uint64_t n);

}  // namespace sluice
