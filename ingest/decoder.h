#pragma once
/// Decodes one event (JSON) and validates it against its schema, leaving the row ready to be
/// encoded: an EventLogging capsule, or an Event Platform event — one with a `$schema` (its
/// `meta.id` is the row's uuid, its `dt` the row's time; schema_id.h). Failure is a value: a
/// dead-letter reason "<class>: <field>: <detail>" whose class is one of malformed_json,
/// not_object, unknown_schema, unknown_revision, incompatible_version, wrong_type,
/// missing_required, unexpected_field, too_long, invalid_value.
/// The success path does not allocate once warm (strings point into the parser's buffers).
/// Thread safety: one Decoder per thread; it borrows the registry of that thread.

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/schema.h"

namespace sluice::ingest {

class Decoder {
 public:
  explicit Decoder(SchemaRegistry& registry);

  /// Decodes `payload`. `fallback_ms` (the Kafka message timestamp, or -1) fills `timestamp`
  /// when the capsule has neither `timestamp` nor `dt`. Returns the schema on success, or
  /// nullptr with `reason` set.
  const Schema* decode(std::string_view payload, int64_t fallback_ms, std::string& reason);

  /// Appends the row of the last successful `decode` to `out` in the batch row format
  /// (storage/row_format.h), columns in the order of its schema's layout().
  void encode_row(std::string& out) const;

  /// The last decode failed only because its schema revision is still being fetched from the
  /// repository: not a dead letter — the event waits (`reason` says for what).
  bool schema_pending() const { return schema_pending_; }

  /// The uuid of the last successful decode.
  std::string_view uuid() const { return uuid_; }
  /// The capsule's `schema` and `revision` (an Event Platform event's title and packed version)
  /// as far as the last decode read them, successful or not: "" and -1 when it did not get
  /// that far (malformed JSON, no such field). Valid until the next decode.
  std::string_view capsule_schema() const { return capsule_schema_; }
  int64_t capsule_revision() const { return capsule_revision_; }
  /// The `timestamp` column (epoch seconds) of the last successful decode, or -1 when NULL.
  int64_t timestamp() const { return timestamp_; }

 private:
  struct Cell {
    enum Kind : uint8_t { kNull, kBool, kInt, kDouble, kText, kScratch } kind = kNull;
    uint32_t epoch = 0;
    bool b = false;
    int64_t i = 0;
    double d = 0;
    std::string_view s;
    uint32_t pos = 0, len = 0;  ///< for kScratch: a range of scratch_
  };

  /// `obj[key]`, an ISO-8601 date-time, into `out` as epoch seconds (unchanged when absent);
  /// false with a reason naming `field` when it is not one.
  bool read_time(simdjson::dom::object obj, std::string_view key, std::string_view field,
                 int64_t& out, std::string& reason);
  /// A capsule's `userAgent` (a string, an object kept as its JSON text, or null) into its cell.
  bool read_user_agent(simdjson::dom::element value, std::string& reason);
  /// The part of decode past the parse, for a capsule.
  const Schema* decode_capsule(simdjson::dom::object capsule, int64_t fallback_ms,
                               std::string& reason);
  /// The part of decode past the parse, for an event with a `$schema`.
  const Schema* decode_event_platform(simdjson::dom::object event, simdjson::dom::element uri,
                                      int64_t fallback_ms, std::string& reason);
  /// Looks the schema up and validates `event` against it; the decode's result.
  const Schema* validate(std::string_view name, int64_t revision,
                         simdjson::dom::object event, std::string& reason);
  bool validate_object(simdjson::dom::object obj, const ObjectRule& rule, std::string& reason);
  /// After a NUMBER_ERROR: true, with an `invalid_value` reason naming the field, when the
  /// payload is JSON whose only fault is a number out of range (1e400, 2^64).
  bool number_out_of_range(std::string_view payload, std::string& reason);
  bool check_value(simdjson::dom::element value, const FieldRule& f, std::string& reason);
  /// Appends the minified JSON of `value` to scratch_ and points `cell` at it.
  void to_json_cell(simdjson::dom::element value, Cell& cell);

  SchemaRegistry& registry_;
  simdjson::dom::parser parser_;
  std::string scratch_;
  uint32_t epoch_ = 0;
  std::vector<uint32_t> seen_;  ///< per FieldRule index: the epoch it was last seen in
  std::vector<Cell> cells_;     ///< per event column
  const Schema* schema_ = nullptr;
  bool schema_pending_ = false;
  // Capsule fields of the last decode.
  std::string_view uuid_, wiki_, web_host_;
  std::string_view capsule_schema_;
  int64_t capsule_revision_ = -1;
  Cell user_agent_;
  int64_t timestamp_ = -1;  ///< epoch seconds or -1
  int64_t dt_ = -1;         ///< epoch seconds or -1
  char uuid_buf_[32] = {};  ///< an Event Platform meta.id without its dashes
};

}  // namespace sluice::ingest
