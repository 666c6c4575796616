#include "ingest/kafka_common.h"

#include <chrono>

#include "common/logging.h"

namespace sluice::ingest {

Status kafka_set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    return Status::error("kafka property " + key + ": " + err);
  }
  return Status::ok();
}

void kafka_log(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* line) {
  static thread_local RateLimiter limiter(std::chrono::seconds(10));
  uint64_t suppressed = 0;
  if (level <= 4 && !limiter.allow(suppressed)) return;
  const auto lvl = level <= 3   ? spdlog::level::err
                   : level == 4 ? spdlog::level::warn
                   : level <= 6 ? spdlog::level::info
                                : spdlog::level::debug;
  auto log = logger("kafka");
  if (suppressed > 0) {
    log->log(lvl, "{}: {} ({} similar lines suppressed)", facility, line, suppressed);
  } else {
    log->log(lvl, "{}: {}", facility, line);
  }
}

}  // namespace sluice::ingest
