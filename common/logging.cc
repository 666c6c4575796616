#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace sluice {
namespace {

struct LogSetup {
  std::mutex mu;
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = spdlog::level::info;
};

LogSetup& setup() {
  static LogSetup s;
  return s;
}

}  // namespace

void configure_logging(const std::string& level, bool json) {
  auto& s = setup();
  std::lock_guard lock(s.mu);
  s.level = spdlog::level::from_str(level);
  s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (json) {
    s.sink->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":"%v"})");
  } else {
    s.sink->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  }
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks() = {s.sink};
    l->set_level(s.level);
  });
}

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  auto& s = setup();
  std::lock_guard lock(s.mu);
  if (auto existing = spdlog::get(component)) return existing;
  if (!s.sink) {
    s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s.sink->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  }
  auto l = std::make_shared<spdlog::logger>(component, s.sink);
  l->set_level(s.level);
  spdlog::register_logger(l);
  return l;
}

}  // namespace sluice
