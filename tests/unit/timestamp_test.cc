#include "ingest/timestamp.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::ingest {
namespace {

std::string mediawiki(int64_t s) {
  char buf[14];
  format_mediawiki(s, buf);
  return std::string(buf, 14);
}

std::string datetime(int64_t s) {
  char buf[19];
  format_datetime(s, buf);
  return std::string(buf, 19);
}

TEST(Timestamp, SecondsAndMillisecondsBothMapToSeconds) {
  EXPECT_EQ(epoch_seconds_from_timestamp(1358791834), 1358791834);
  EXPECT_EQ(epoch_seconds_from_timestamp(1358791834912.0), 1358791834);
  EXPECT_EQ(epoch_seconds_from_timestamp(1358791834.9), 1358791834);
  EXPECT_EQ(epoch_seconds_from_timestamp(0), 0);
}

TEST(Timestamp, OutOfRangeValuesAreRefused) {
  EXPECT_FALSE(epoch_seconds_from_timestamp(-1));
  EXPECT_FALSE(epoch_seconds_from_timestamp(1e300));
  EXPECT_FALSE(epoch_seconds_from_timestamp(std::numeric_limits<double>::quiet_NaN()));
}

TEST(Timestamp, MediaWikiFormatIsUtc) {
  EXPECT_EQ(mediawiki(1358791834), "20130121181034");
  EXPECT_EQ(mediawiki(0), "19700101000000");
  EXPECT_EQ(mediawiki(951782400), "20000229000000");  // leap day
  EXPECT_EQ(datetime(1358791834), "2013-01-21 18:10:34");
}

TEST(Timestamp, Iso8601Variants) {
  EXPECT_EQ(epoch_seconds_from_iso8601("2013-01-21T18:10:34.912000"), 1358791834);
  EXPECT_EQ(epoch_seconds_from_iso8601("2013-01-21T18:10:34Z"), 1358791834);
  EXPECT_EQ(epoch_seconds_from_iso8601("2013-01-21 18:10:34"), 1358791834);
  EXPECT_EQ(epoch_seconds_from_iso8601("2013-01-21T20:10:34+02:00"), 1358791834);
  EXPECT_EQ(epoch_seconds_from_iso8601("2013-01-21T13:10:34-0500"), 1358791834);
}

TEST(Timestamp, MalformedIso8601IsRefused) {
  for (const char* bad :
       {"", "2013-01-21", "2013-13-01T00:00:00", "2013-02-30T00:00:00", "2013-01-21T25:00:00",
        "2013-01-21T18:10:34 junk", "yesterday", "2013-01-21T18:10:34.", "2013-01-21T18:10:34+2"}) {
    EXPECT_FALSE(epoch_seconds_from_iso8601(bad)) << bad;
  }
}

}  // namespace
}  // namespace sluice::ingest
