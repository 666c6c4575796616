#pragma once
/// One named spdlog logger per component ("ingest", "kafka", "mariadb", "admin", ...), all
/// sharing one sink configured once at start-up by `configure_logging`. `RateLimiter` guards
/// every log statement that could repeat per event or per retry.
/// Thread safety: loggers are thread safe; a RateLimiter is not (one per owning thread).

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>

namespace sluice {

/// level: trace|debug|info|warn|error; json: one JSON object per line instead of text. Text
/// lines written straight to the journal (see stderr_is_journal) carry no timestamp of their
/// own and start with the syslog priority of their level ("<4>warn  [mariadb] ...").
void configure_logging(const std::string& level, bool json);

/// True when stderr is the journal stream systemd set up for this service (JOURNAL_STREAM
/// names its device and inode).
bool stderr_is_journal();

/// The formatter configure_logging gives the sink (exposed for tests). Messages carry untrusted
/// text (field names, server messages): in text lines, control characters and bytes that are
/// not UTF-8 are escaped (`\n`, `\xNN`); in JSON lines, the message is a valid JSON string
/// whatever it holds.
std::unique_ptr<spdlog::formatter> make_log_formatter(bool json, bool journal = false);

/// Changes the level of every logger (a config reload).
void set_log_level(const std::string& level);

/// The logger of a component, created on first use with the configured sink and level.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

/// Allows at most one message per interval and counts what it suppressed in between, so a
/// repeated failure yields one line now and a summary ("... 4123 more") later.
class RateLimiter {
 public:
  explicit RateLimiter(std::chrono::milliseconds interval) : interval_(interval) {}
  /// True when a line may be logged now; `suppressed` then holds how many were held back since.
  bool allow(uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_{};
  uint64_t suppressed_ = 0;
};

}  // namespace sluice
