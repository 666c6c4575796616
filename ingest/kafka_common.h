#pragma once
/// What the librdkafka clients of ingest (the consumer, KafkaSource; the replay's reader,
/// KafkaRangeReader) share: ownership of a partition list, and one log callback.

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace sluice::ingest {

struct KafkaListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
/// An owned rd_kafka_topic_partition_list_t.
using KafkaListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaListDeleter>;

/// Sets one property of a configuration being built; the error names the property.
Status kafka_set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);

/// librdkafka's log lines into the `kafka` logger at their level. Warnings and errors repeat
/// per retry while a broker is away: one line per 10 s per thread, saying how many similar
/// lines it stands for.
void kafka_log(const rd_kafka_t* rk, int level, const char* facility, const char* line);

}  // namespace sluice::ingest
