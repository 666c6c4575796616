#include "common/text.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/logging.h"

namespace sluice {
namespace {

TEST(Text, CountsAreGroupedByThousands) {
  EXPECT_EQ(thousands(0), "0");
  EXPECT_EQ(thousands(999), "999");
  EXPECT_EQ(thousands(1000), "1,000");
  EXPECT_EQ(thousands(1234567), "1,234,567");
}

TEST(Text, ShortTextIsKeptAsItIs) {
  EXPECT_EQ(bounded("abc", 10), "abc");
  EXPECT_EQ(bounded(std::string(10, 'x'), 10), std::string(10, 'x'));
}

TEST(Text, LongTextIsCutAtACharacterBoundaryWithAMarkerWithinTheBound) {
  const std::string s = bounded(std::string(2000, 'f'), 1024);
  EXPECT_EQ(s.size(), 1024u);
  EXPECT_TRUE(s.ends_with(kCutMarker));
  // "é" is two bytes, "😀" four: a cut never splits one.
  for (const std::string& piece : {std::string("é"), std::string("😀")}) {
    std::string text;
    while (text.size() < 3000) text += piece;
    for (size_t max = 4; max < 40; ++max) {
      const std::string cut = bounded(text, max);
      EXPECT_LE(cut.size(), max);
      const std::string body = cut.substr(0, cut.size() - kCutMarker.size());
      EXPECT_EQ(body.size() % piece.size(), 0u) << max;
      EXPECT_TRUE(cut.ends_with(kCutMarker));
    }
  }
  std::string in_place(5000, 'z');
  bound(in_place, 100);
  EXPECT_EQ(in_place.size(), 100u);
}

TEST(Text, Utf8SequencesAreRecognisedAndForgeriesRefused) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("é", 0), 2u);
  EXPECT_EQ(utf8_sequence_length("€", 0), 3u);
  EXPECT_EQ(utf8_sequence_length("😀", 0), 4u);
  EXPECT_EQ(utf8_sequence_length("\xc0\xaf", 0), 0u);          // overlong '/'
  EXPECT_EQ(utf8_sequence_length("\xed\xa0\x80", 0), 0u);      // a surrogate
  EXPECT_EQ(utf8_sequence_length("\xf4\x90\x80\x80", 0), 0u);  // beyond U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xe2\x82", 0), 0u);          // cut short
  EXPECT_EQ(utf8_sequence_length("\x80", 0), 0u);              // a stray continuation
}

TEST(Text, LogEscapingKeepsUntrustedTextOnItsLine) {
  std::string out;
  append_log_escaped(out,
                     "a\nb\r\tc\\d\x01\x7f"
                     "é\xff");
  EXPECT_EQ(out, "a\\nb\\r\\tc\\\\d\\x01\\x7fé\\xff");
}

std::string log_line(bool json, const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(make_log_formatter(json));
  spdlog::logger logger("test", sink);
  logger.warn("{}", message);
  return out.str();
}

TEST(Logging, TextLinesEscapeControlCharactersAndBytesThatAreNotUtf8) {
  const std::string line = log_line(false, "field 'x\n2026-01-01 00:00:00.000 error [fake] y\xfe'");
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  EXPECT_NE(line.find("x\\n2026"), std::string::npos) << line;
  EXPECT_NE(line.find("\\xfe"), std::string::npos) << line;
}

TEST(Logging, LinesToTheJournalStartWithTheSyslogPriorityOfTheirLevel) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(make_log_formatter(false, /*journal=*/true));
  spdlog::logger logger("test", sink);
  logger.set_level(spdlog::level::trace);
  logger.trace("t");
  logger.debug("d");
  logger.info("i");
  logger.warn("w");
  logger.error("e");
  logger.critical("c");
  EXPECT_EQ(out.str(),
            "<7>trace [test] t\n<7>debug [test] d\n<6>info  [test] i\n<4>warning [test] w\n"
            "<3>error [test] e\n<2>critical [test] c\n");
}

TEST(Logging, JsonLinesStayJsonWhateverTheMessageHolds) {
  const std::string line = log_line(true, "a \"quote\"\n\x01 and \xff not UTF-8, é kept");
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  const auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_EQ(j["msg"], "a \"quote\"\n\x01 and \xef\xbf\xbd not UTF-8, é kept");
}

}  // namespace
}  // namespace sluice
