#pragma once
/// SLUICE_ASSERT(condition, format, args...): an invariant the code relies on, checked in every
/// build — production included. Sluice's job is to lose nothing and write nothing twice; a
/// broken invariant means its picture of a partition is wrong, and going on could write that
/// picture into MariaDB. Stopping is safe instead: the process restarts from what is durable
/// (MariaDB's sluice_offsets, the spool, Kafka) exactly as after a kill -9. So the check logs
/// the condition, where, and the values the message names, then aborts (a core dump for the
/// post-mortem). Conditions are cheap — comparisons of values at hand, no I/O — and the message
/// is formatted only when one fails.

#include <string>

#include <spdlog/fmt/fmt.h>

namespace sluice {

[[noreturn]] void assert_failed(const char* condition, const char* file, int line,
                                const std::string& message);

}  // namespace sluice

#define SLUICE_ASSERT(condition, ...)                                                    \
  ((condition) ? static_cast<void>(0)                                                    \
               : ::sluice::assert_failed(#condition, __FILE__, __LINE__,                 \
                                         ::fmt::format(__VA_ARGS__)))
