// The decoder and validator with the real shipped schemas (capsules, and Event Platform events
// of /test/click, whose two versions share a grown table): any bytes a Kafka message may hold.
// Checks, beyond not crashing: a refused event's reason fits sluice_dead_letter.reason and is
// UTF-8; an accepted one encodes to a row of exactly its layout's columns.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/text.h"
#include "ingest/decoder.h"
#include "storage/batch.h"
#include "storage/row_format.h"

namespace {

bool utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = sluice::utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sluice::ingest::SchemaRegistry registry(SLUICE_SCHEMAS_DIR);
  static sluice::ingest::Decoder decoder(registry);
  static std::string reason, row, scratch;
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const auto* schema = decoder.decode(payload, 1'700'000'000'000, reason);
  if (schema == nullptr) {
    if (reason.empty() || reason.size() > sluice::storage::kMaxReasonBytes || !utf8(reason)) {
      std::abort();
    }
    return 0;
  }
  row.clear();
  decoder.encode_row(row);
  if (row.empty() || row.back() != '\n') std::abort();
  size_t fields = 0;
  sluice::storage::for_each_field(std::string_view(row).substr(0, row.size() - 1), scratch,
                                  [&](bool, std::string_view) { ++fields; });
  if (fields != schema->layout()->column_count()) std::abort();
  return 0;
}
