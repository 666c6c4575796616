#include "ingest/decoder.h"

#include <gtest/gtest.h>

#include <set>

#include "common/text.h"
#include "storage/batch.h"
#include "storage/row_format.h"
#include "testing/decoded_row.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

class DecoderTest : public ::testing::Test {
 protected:
  DecoderTest() : registry_(testing::source_dir() + "/schemas"), decoder_(registry_) {}

  /// Decodes and returns the encoded row's fields by column name ("NULL" for NULL).
  std::map<std::string, std::string> row_of(const std::string& json, int64_t fallback_ms = -1) {
    std::string reason;
    const Schema* s = decoder_.decode(json, fallback_ms, reason);
    EXPECT_NE(s, nullptr) << reason;
    if (s == nullptr) return {};
    return testing::decoded_row(decoder_, *s);
  }

  std::string reason_of(const std::string& json) {
    std::string reason;
    EXPECT_EQ(decoder_.decode(json, -1, reason), nullptr);
    return reason;
  }

  SchemaRegistry registry_;
  Decoder decoder_;
};

constexpr const char* kTestEvent =
    R"({"event": {"value": "h\u00e9llo\t\ud83d\ude00\nline", "seq": 7, "count": -3,
        "ratio": 2.5, "flag": false, "color": "blue", "tags": ["x", 1, null],
        "maybe": null, "nested": {"deeplyNested": {"pi": 3.14159}}},
       "seqId": 12345, "timestamp": 1358791834912, "dt": "2013-01-21T18:10:34.912000",
       "wiki": "enwiki", "webHost": "en.m.wikipedia.org", "recvFrom": "fenari",
       "revision": 1, "schema": "TestSchema", "uuid": "babb66f34a0a5de3be0c6513088be33e",
       "userAgent": {"browser_family": "Firefox", "os": "Linux"}})";

TEST_F(DecoderTest, GoodCapsuleBecomesATypedRow) {
  auto row = row_of(kTestEvent);
  EXPECT_EQ(row["uuid"], "babb66f34a0a5de3be0c6513088be33e");
  EXPECT_EQ(row["timestamp"], "20130121181034");
  EXPECT_EQ(row["dt"], "2013-01-21 18:10:34");
  EXPECT_EQ(row["wiki"], "enwiki");
  EXPECT_EQ(row["webHost"], "en.m.wikipedia.org");
  EXPECT_EQ(row["userAgent"], R"({"browser_family":"Firefox","os":"Linux"})");
  EXPECT_EQ(row["event_value"], "h\xc3\xa9llo\t\xf0\x9f\x98\x80\nline");
  EXPECT_EQ(row["event_seq"], "7");
  EXPECT_EQ(row["event_count"], "-3");
  EXPECT_EQ(row["event_ratio"], "2.5");
  EXPECT_EQ(row["event_flag"], "0");
  EXPECT_EQ(row["event_color"], "blue");
  EXPECT_EQ(row["event_tags"], R"(["x",1,null])");
  EXPECT_EQ(row["event_maybe"], "NULL");
  EXPECT_EQ(row["event_nested_deeplyNested_pi"], "3.14159");
  EXPECT_EQ(row["event_nested_label"], "NULL");
}

TEST_F(DecoderTest, AbsentOptionalFieldsAreNullAndDoNotLeakFromThePreviousEvent) {
  (void)row_of(kTestEvent);
  auto row = row_of(
      R"({"schema":"TestSchema","revision":1,"uuid":"00000000000000000000000000000001",
          "wiki":"x","event":{"value":"v","seq":1}})");
  EXPECT_EQ(row["event_count"], "NULL");
  EXPECT_EQ(row["event_nested_deeplyNested_pi"], "NULL");
  EXPECT_EQ(row["webHost"], "NULL");
  EXPECT_EQ(row["userAgent"], "NULL");
  EXPECT_EQ(row["timestamp"], "NULL");
  EXPECT_EQ(row["dt"], "NULL");
}

TEST_F(DecoderTest, TimestampComesFromSecondsMillisecondsDtOrTheKafkaTimestamp) {
  const std::string head =
      R"({"schema":"SaveTiming","revision":15396492,"uuid":"0123456789abcdef0123456789ABCDEF",
          "wiki":"x","event":{"saveTiming":5})";
  EXPECT_EQ(row_of(head + R"(,"timestamp":1358791834})")["timestamp"], "20130121181034");
  EXPECT_EQ(row_of(head + R"(,"timestamp":1358791834912})")["timestamp"], "20130121181034");
  EXPECT_EQ(row_of(head + R"(,"dt":"2013-01-21T18:10:34Z"})")["timestamp"], "20130121181034");
  EXPECT_EQ(row_of(head + "}", 1358791834000)["timestamp"], "20130121181034");
  EXPECT_EQ(row_of(head + R"(,"userAgent":"ua"})")["userAgent"], "ua");
}

TEST_F(DecoderTest, EveryFailureClassNamesTheFieldAndTheClass) {
  const std::string capsule = R"({"uuid":"babb66f34a0a5de3be0c6513088be33e","wiki":"enwiki",)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"schema\": ", "malformed_json: message: "},
      {"", "malformed_json: message: "},
      {"42", "not_object: message: the message is a JSON integer"},
      {"[1]", "not_object: message: the message is a JSON array"},
      {capsule + R"("schema":"Nope","revision":1,"event":{}})", "unknown_schema: Nope"},
      {capsule + R"("schema":"TestSchema","revision":3,"event":{}})",
       "unknown_revision: TestSchema revision 3"},
      {capsule + R"("schema":"TestSchema","revision":"1","event":{}})",
       "wrong_type: revision: expected integer, got string"},
      {capsule + R"("revision":1,"event":{}})", "missing_required: schema"},
      {R"({"schema":"TestSchema","revision":1,"wiki":"x","event":{}})", "missing_required: uuid"},
      {R"({"schema":"TestSchema","revision":1,"uuid":"xyz","wiki":"x","event":{}})",
       "invalid_value: uuid: expected 32 hexadecimal characters"},
      {capsule + R"("schema":"TestSchema","revision":1})", "missing_required: event"},
      {capsule + R"("schema":"TestSchema","revision":1,"event":[]})",
       "wrong_type: event: expected object, got array"},
      {capsule + R"("schema":"TestSchema","revision":1,"event":{"value":"v","seq":"1"}})",
       "wrong_type: event.seq: expected integer, got string"},
      {capsule + R"("schema":"TestSchema","revision":1,"event":{"value":"v","seq":1.5}})",
       "wrong_type: event.seq: expected integer, got number"},
      {capsule + R"("schema":"TestSchema","revision":1,"event":{"seq":1}})",
       "missing_required: event.value"},
      {capsule + R"("schema":"TestSchema","revision":1,"event":{"value":"v","seq":1,"x":1}})",
       "unexpected_field: event.x: not declared by the schema"},
      {capsule +
           R"("schema":"TestSchema","revision":1,"event":{"value":"v","seq":1,"nested":{"bogus":1}}})",
       "unexpected_field: event.nested.bogus"},
      {capsule +
           R"("schema":"TestSchema","revision":1,"event":{"value":"v","seq":1,"color":"pink"}})",
       "invalid_value: event.color: 'pink' is not one of the allowed values"},
      {capsule + R"("schema":"TestSchema","revision":1,"event":{"value":")" +
           std::string(1025, 'a') + R"(","seq":1}})",
       "too_long: event.value: 1025 bytes, the column holds 1024"},
      {capsule + R"("schema":"TestSchema","revision":1,"timestamp":"soon","event":{}})",
       "wrong_type: timestamp: expected number, got string"},
      {capsule + R"("schema":"TestSchema","revision":1,"dt":"21/01/2013","event":{}})",
       "invalid_value: dt: not an ISO-8601 date-time"},
      {capsule + R"("schema":"TestSchema","revision":1,"webHost":")" + std::string(2000, 'h') +
           R"(","event":{}})",
       "too_long: webHost: 2000 bytes"},
      {capsule + R"("schema":"NavigationTiming","revision":15485142,"event":{"isAnon":"yes"}})",
       "wrong_type: event.isAnon: expected boolean, got string"},
  };
  for (const auto& [json, expected] : cases) {
    const auto reason = reason_of(json);
    EXPECT_EQ(reason.rfind(expected, 0), 0u)
        << "input: " << json.substr(0, 120) << "\nreason: " << reason;
  }
}

TEST_F(DecoderTest, NumberFieldsAcceptIntegersAndNullableTypesAcceptNull) {
  auto row = row_of(
      R"({"schema":"TestSchema","revision":1,"uuid":"00000000000000000000000000000002",
          "wiki":"x","event":{"value":"v","seq":1,"ratio":3,"maybe":4}})");
  EXPECT_EQ(row["event_ratio"], "3");
  EXPECT_EQ(row["event_maybe"], "4");
}

// The integration tests' event factory must produce events the decoder accepts (and bad ones
// it refuses with the promised reason), or those tests would prove nothing.
TEST_F(DecoderTest, TestEventFactoryGoodEventsAreValidAndBadOnesFailAsPromised) {
  for (int which = 0; which < 4; ++which) {
    for (uint64_t seq = 0; seq < 30; ++seq) {
      std::string reason;
      const auto json = testing::EventFactory::good(which, 1, 2, seq);
      const Schema* s = decoder_.decode(json, -1, reason);
      ASSERT_NE(s, nullptr) << reason << "\n" << json;
      EXPECT_EQ(s->table->name(), testing::EventFactory::table(which));
      EXPECT_EQ(decoder_.uuid(), testing::EventFactory::uuid_for(1, 2, seq));
    }
  }
  for (int which = 0; which < testing::EventFactory::kBadClasses; ++which) {
    std::string expected;
    const auto json = testing::EventFactory::bad(which, 9, expected);
    EXPECT_EQ(reason_of(json).rfind(expected, 0), 0u) << reason_of(json) << "\n" << json;
  }
}

TEST_F(DecoderTest, BenchmarkNavigationTimingEventsAreValidAndVaried) {
  std::set<size_t> non_null_counts;
  for (uint64_t seq = 0; seq < 500; ++seq) {
    std::string reason;
    const auto json = testing::EventFactory::navigation_timing(3, 1, seq);
    ASSERT_NE(decoder_.decode(json, -1, reason), nullptr) << reason << "\n" << json;
    std::string row;
    decoder_.encode_row(row);
    size_t non_null = 0;
    std::string scratch;
    storage::for_each_field(std::string_view(row).substr(0, row.size() - 1), scratch,
                            [&](bool is_null, std::string_view) { non_null += is_null ? 0 : 1; });
    non_null_counts.insert(non_null);
  }
  // Optional fields come and go: rows differ in how many columns they fill.
  EXPECT_GE(non_null_counts.size(), 5u);
  EXPECT_GE(*non_null_counts.rbegin(), 30u);
}

class DecoderLimitsTest : public DecoderTest {};

const std::string kHead =
    R"({"uuid":"babb66f34a0a5de3be0c6513088be33e","wiki":"enwiki","schema":"TestSchema",)"
    R"("revision":1,)";

TEST_F(DecoderLimitsTest, AnUnexpectedFieldNameOfAnyLengthGivesAReasonThatFitsTheColumn) {
  for (size_t n : {2000u, 100'000u}) {
    const auto reason =
        reason_of(kHead + R"("event":{"value":"v","seq":1,")" + std::string(n, 'f') + R"(":1}})");
    EXPECT_EQ(reason.rfind("unexpected_field: event.ffff", 0), 0u) << reason;
    EXPECT_NE(reason.find("…: not declared by the schema"), std::string::npos) << reason;
    EXPECT_LE(reason.size(), storage::kMaxReasonBytes);
  }
  // Cut at a character boundary: the reason stays UTF-8.
  const auto reason = reason_of(kHead + R"("event":{"value":"v","seq":1,")" +
                                std::string(195, 'k') + "😀😀😀😀" + R"(":1}})");
  for (size_t i = 0; i < reason.size();) {
    const size_t n = utf8_sequence_length(reason, i);
    ASSERT_GT(n, 0u) << "not UTF-8 at byte " << i << ": " << reason;
    i += n;
  }
}

TEST_F(DecoderLimitsTest, NumbersOutOfRangeAreInvalidValuesNamingTheFieldNotMalformedJson) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("event":{"value":"v","seq":1,"ratio":1e400}})", "invalid_value: event.ratio: number"},
      {R"("event":{"value":"v","seq":1,"ratio":-1.5E+400}})", "invalid_value: event.ratio"},
      {R"("event":{"value":"v","seq":18446744073709551616}})", "invalid_value: event.seq"},
      {R"("event":{"value":"v","seq":-9223372036854775809}})", "invalid_value: event.seq"},
      {R"("event":{"value":"v","seq":1,"tags":[1,2,1e999]}})", "invalid_value: event.tags[2]"},
      {R"("timestamp":1e400,"event":{"value":"v","seq":1}})", "invalid_value: timestamp"},
      {R"("event":{"value":"v","seq":1,"nested":{"deeplyNested":{"pi":123456789e999}}}})",
       "invalid_value: event.nested.deeplyNested.pi"},
  };
  for (const auto& [json, expected] : cases) {
    const auto reason = reason_of(kHead + json);
    EXPECT_EQ(reason.rfind(expected, 0), 0u) << json << "\nreason: " << reason;
  }
  // Not numbers at all, or an out-of-range number in a document that is not JSON otherwise:
  // still malformed.
  for (const std::string json :
       {R"("event":{"value":"v","seq":01}})", R"("event":{"value":"v","seq":1.}})",
        R"("event":{"value":"v","seq":-}})", R"("event":{"value":"v","seq":1e400,}})"}) {
    EXPECT_EQ(reason_of(kHead + json).rfind("malformed_json: ", 0), 0u) << json;
  }
  // Underflow is zero, not an error; the largest 64-bit integers are numbers.
  EXPECT_EQ(row_of(kHead + R"("event":{"value":"v","seq":1,"ratio":1e-400}})")["event_ratio"], "0");
  EXPECT_EQ(row_of(kHead + R"("event":{"value":"v","seq":9223372036854775807}})")["event_seq"],
            "9223372036854775807");
}

}  // namespace
}  // namespace sluice::ingest
