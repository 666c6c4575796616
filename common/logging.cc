#include "common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "common/text.h"

namespace sluice {
namespace {

/// `%*` in a pattern: the message as the inside of a JSON string (quotes, backslashes and
/// control characters escaped), so JSON log lines stay JSON whatever a message holds.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    auto put = [&](std::string_view text) { dest.append(text.data(), text.data() + text.size()); };
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    for (size_t i = 0; i < payload.size(); ++i) {
      const char c = payload[i];
      if (static_cast<unsigned char>(c) >= 0x80) {
        // Multi-byte UTF-8 as it is; a byte that is not UTF-8 as U+FFFD, so the line stays JSON.
        if (const size_t n = utf8_sequence_length(payload, i); n > 0) {
          put(payload.substr(i, n));
          i += n - 1;
        } else {
          put("\\ufffd");
        }
        continue;
      }
      switch (c) {
        case '"':
          put("\\\"");
          break;
        case '\\':
          put("\\\\");
          break;
        case '\n':
          put("\\n");
          break;
        case '\t':
          put("\\t");
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            const char u[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xf], kHex[c & 0xf]};
            dest.append(u, u + sizeof u);
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

/// `%*` in a text pattern: the message with control characters and bytes that are not UTF-8
/// escaped (append_log_escaped), so text from events or clients cannot forge a log line.
class TextEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    scratch_.clear();
    append_log_escaped(scratch_, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(scratch_.data(), scratch_.data() + scratch_.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextEscapedMessage>();
  }

 private:
  std::string scratch_;
};

/// `%P` in a pattern: the level as a syslog priority prefix ("<3>" for error, "<6>" for info),
/// which journald reads from each line (SyslogLevelPrefix=, on by default) as the entry's
/// priority, so `journalctl -p warning` filters Sluice's lines.
class SyslogPriority final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    // By spdlog's level (trace, debug, info, warn, err, critical, off): syslog's debug (7),
    // info (6), warning (4), err (3) and crit (2).
    static constexpr char kPriority[] = {'7', '7', '6', '4', '3', '2', '6'};
    const auto level = static_cast<size_t>(msg.level);
    const char prefix[] = {'<', level < sizeof kPriority ? kPriority[level] : '6', '>'};
    dest.append(prefix, prefix + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriority>();
  }
};

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

std::unique_ptr<spdlog::formatter> make_log_formatter(bool json, bool journal) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (json) {
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":"%*"})");
  } else if (journal) {
    // journald stamps every line itself: no second timestamp, and the level as its priority.
    formatter->add_flag<SyslogPriority>('P').add_flag<TextEscapedMessage>('*').set_pattern(
        "%P%-5l [%n] %*");
  } else {
    formatter->add_flag<TextEscapedMessage>('*').set_pattern(
        "%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %*");
  }
  return formatter;
}

void configure_logging(const std::string& level, bool json) {
  auto& s = setup();
  std::lock_guard lock(s.mu);
  s.level = spdlog::level::from_str(level);
  s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  s.sink->set_formatter(make_log_formatter(json, !json && stderr_is_journal()));
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks() = {s.sink};
    l->set_level(s.level);
  });
}

bool stderr_is_journal() {
  // systemd sets JOURNAL_STREAM=<device>:<inode> of the stream it connected to the journal; it
  // is inherited by children whose stderr goes elsewhere, hence the comparison.
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

void set_log_level(const std::string& level) {
  auto& s = setup();
  std::lock_guard lock(s.mu);
  s.level = spdlog::level::from_str(level);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(s.level); });
}

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  auto& s = setup();
  std::lock_guard lock(s.mu);
  if (auto existing = spdlog::get(component)) return existing;
  if (!s.sink) {
    s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s.sink->set_formatter(make_log_formatter(false, false));
  }
  auto l = std::make_shared<spdlog::logger>(component, s.sink);
  l->set_level(s.level);
  spdlog::register_logger(l);
  return l;
}

}  // namespace sluice
