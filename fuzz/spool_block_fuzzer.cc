// The spool's block decoding: any bytes as a stored block (a torn write, a bad disk). Decoding
// must end in events or an error, never a crash, a read out of bounds or a huge allocation.

#include <cstdint>
#include <string>

#include "storage/spool_block.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::string scratch;
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  uint64_t bytes = 0;
  auto st = sluice::storage::spool_block::decode_block(
      value, scratch, [&](int64_t, int64_t, std::string_view payload) {
        bytes += payload.size();
        return true;
      });
  (void)st.is_ok();
  return 0;
}
