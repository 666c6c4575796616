#include "common/assert.h"

#include <cstdlib>

#include "common/logging.h"

namespace sluice {

void assert_failed(const char* condition, const char* file, int line,
                   const std::string& message) {
  logger("main")->critical("invariant broken at {}:{}: {} ({}); stopping — a restart goes on "
                           "from what is durable",
                           file, line, condition, message);
  spdlog::shutdown();  // flush every sink before the abort
  std::abort();
}

}  // namespace sluice
