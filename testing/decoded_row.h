#pragma once
/// A unit test's view of what LOAD DATA would receive: the row of a decoder's last successful
/// decode, by column name of the layout it is written to ("NULL" for NULL).

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ingest/decoder.h"
#include "storage/row_format.h"

namespace sluice::testing {

inline std::map<std::string, std::string> decoded_row(const ingest::Decoder& decoder,
                                                      const ingest::Schema& schema) {
  std::string encoded;
  decoder.encode_row(encoded);
  EXPECT_EQ(encoded.back(), '\n');
  encoded.pop_back();
  const storage::TableLayout& layout = *schema.layout();
  std::vector<std::string> names(layout.fixed_columns().begin(), layout.fixed_columns().end());
  for (const auto& c : layout.event_columns()) names.push_back(c.name);
  std::map<std::string, std::string> out;
  std::string scratch;
  size_t i = 0;
  storage::for_each_field(encoded, scratch, [&](bool is_null, std::string_view v) {
    out[names.at(i++)] = is_null ? "NULL" : std::string(v);
  });
  EXPECT_EQ(i, names.size());
  return out;
}

}  // namespace sluice::testing
