#include "storage/spool_block.h"

#include <lz4.h>

#include <limits>

namespace sluice::storage::spool_block {

bool parse_header(std::string_view value, BlockHeader& h) {
  if (value.size() < kHeaderSize) return false;
  h.format = static_cast<uint8_t>(value[0]);
  h.events = static_cast<uint32_t>(get_be(value, 1, 4));
  h.last_offset = get_signed(value, 5);
  h.oldest_timestamp_ms = get_signed(value, 13);
  h.raw_size = static_cast<uint32_t>(get_be(value, 21, 4));
  return (h.format == kFormatRaw || h.format == kFormatLz4) && h.events > 0;
}

bool block_body(std::string_view value, const BlockHeader& h, std::string& scratch,
                std::string_view& body) {
  if (value.size() < kHeaderSize) return false;
  const std::string_view stored = value.substr(kHeaderSize);
  if (h.format == kFormatRaw) {
    body = stored;
    return stored.size() == h.raw_size;
  }
  // Never allocate what the stored bytes cannot decompress to, nor pass LZ4 a size it cannot
  // take: a corrupt header must not cost gigabytes.
  constexpr auto kIntMax = static_cast<uint64_t>(std::numeric_limits<int>::max());
  if (stored.size() > kIntMax || h.raw_size > kIntMax ||
      h.raw_size > stored.size() * kMaxLz4Ratio + 16) {
    return false;
  }
  scratch.resize(h.raw_size);
  const int n = LZ4_decompress_safe(stored.data(), scratch.data(), static_cast<int>(stored.size()),
                                    static_cast<int>(h.raw_size));
  body = scratch;
  return n == static_cast<int>(h.raw_size);
}

Status decode_block(std::string_view value, std::string& scratch,
                    const std::function<bool(int64_t, int64_t, std::string_view)>& fn) {
  BlockHeader h;
  if (!parse_header(value, h)) return Status::error("block header is corrupt");
  std::string_view body;
  if (!block_body(value, h, scratch, body)) return Status::error("block body is corrupt");
  uint64_t events = 0;
  int64_t last = 0;
  bool increasing = true, stopped = false;
  const bool ok = for_each_event(body, [&](int64_t offset, int64_t ts, std::string_view p) {
    if (events > 0 && offset <= last) increasing = false;
    last = offset;
    ++events;
    if (!fn(offset, ts, p)) stopped = true;
    return !stopped;
  });
  if (!ok) return Status::error("block body is malformed (an event cut short)");
  if (stopped) return Status::ok();
  if (!increasing) return Status::error("block offsets do not increase");
  if (events != h.events) {
    return Status::error("block holds " + std::to_string(events) + " events, its header says " +
                         std::to_string(h.events));
  }
  if (last != h.last_offset) return Status::error("block's last offset differs from its header");
  return Status::ok();
}

}  // namespace sluice::storage::spool_block
