// The config loader: any bytes as a YAML file. A bad file must be an error value naming where,
// never a crash or an exception escaping.

#include <cstdint>
#include <string>

#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  auto config = sluice::parse_config(yaml, "/nonexistent/sluice-fuzz/sluice.yaml");
  (void)config.is_ok();
  return 0;
}
