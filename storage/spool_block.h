#pragma once
/// The stored form of a spool block (RocksDbSpool, rocksdb_spool.h): a value read back from
/// disk is untrusted — a torn write, a bad sector, another program — so decoding it never
/// trusts a length it holds. Pure functions, no RocksDB: the fuzz target calls them directly.
///
/// Value: format (1 byte: 0 raw, 1 LZ4), events (4, big-endian), last offset (8), oldest
/// timestamp (8), raw body size (4), then the body — LZ4-compressed, or raw when that would not
/// be smaller. Body: per event, offset (8), timestamp (8), payload length (4), payload. Signed
/// 64-bit values are stored big-endian with the sign bit flipped, so byte order is numeric.
/// Thread safety: pure functions.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::storage::spool_block {

inline constexpr uint8_t kFormatRaw = 0;
inline constexpr uint8_t kFormatLz4 = 1;
inline constexpr size_t kHeaderSize = 1 + 4 + 8 + 8 + 4;
inline constexpr size_t kEventHeaderSize = 8 + 8 + 4;
inline constexpr uint64_t kSign64 = 0x8000000000000000ull;
/// LZ4 expands at most about 255 times: a header claiming more than that is corrupt, and is
/// refused before anything is allocated for it.
inline constexpr uint64_t kMaxLz4Ratio = 255;

inline void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}
inline void put_be64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}
/// Precondition: pos + bytes <= s.size().
inline uint64_t get_be(std::string_view s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v = (v << 8) | static_cast<unsigned char>(s[pos + static_cast<size_t>(i)]);
  }
  return v;
}
inline void put_signed(std::string& out, int64_t v) {
  put_be64(out, static_cast<uint64_t>(v) ^ kSign64);
}
/// Precondition: pos + 8 <= s.size().
inline int64_t get_signed(std::string_view s, size_t pos) {
  return static_cast<int64_t>(get_be(s, pos, 8) ^ kSign64);
}

struct BlockHeader {
  uint8_t format = 0;
  uint32_t events = 0;
  int64_t last_offset = 0;
  int64_t oldest_timestamp_ms = 0;
  uint32_t raw_size = 0;
};

/// Reads a block's header; false when the value is too short, of an unknown format, or empty.
bool parse_header(std::string_view value, BlockHeader& h);

/// The raw body of a block (decompressed into `scratch` when needed); false when corrupt: a
/// raw body of another size than the header says, a compressed one that does not decompress
/// to exactly that size, or a size beyond what LZ4 can produce from the stored bytes.
bool block_body(std::string_view value, const BlockHeader& h, std::string& scratch,
                std::string_view& body);

/// Calls fn(offset, timestamp_ms, payload) for each event of a raw body until fn returns
/// false; returns false when the body is malformed (an event header or payload cut short).
template <typename Fn>
bool for_each_event(std::string_view body, Fn&& fn) {
  size_t pos = 0;
  while (pos < body.size()) {
    if (body.size() - pos < kEventHeaderSize) return false;
    const int64_t offset = get_signed(body, pos);
    const int64_t timestamp = get_signed(body, pos + 8);
    const auto len = static_cast<size_t>(get_be(body, pos + 16, 4));
    pos += kEventHeaderSize;
    if (body.size() - pos < len) return false;
    if (!fn(offset, timestamp, body.substr(pos, len))) return true;
    pos += len;
  }
  return true;
}

/// The whole decode of one stored value: header, body, events — each event handed to `fn`
/// (which returns false to stop). An error names what is wrong; it also checks what the
/// header promises: as many events as it says, offsets increasing, the last one as it says.
Status decode_block(std::string_view value, std::string& scratch,
                    const std::function<bool(int64_t, int64_t, std::string_view)>& fn);

}  // namespace sluice::storage::spool_block
