#pragma once
/// Schema revisions fetched from a schema repository over HTTP(S) (`schemas.repository_url`),
/// as EventLogging's own consumer did: `<url>/<SchemaName>/<revision>.json`. Fetches run on a
/// thread of their own, so the ingest thread never waits on the network: it asks, and hears
/// "pending" until an answer came.
///
/// Bounded: one fetch at a time, at most kMaxTracked revisions asked for and not handed out
/// (entries nobody asks for again are forgotten after kForgetAfter), each answer at most
/// max_bytes, each fetch within the timeout; only http and https (an https repository may
/// redirect only to https); TLS verified against the system's CAs, or only `ca_file`'s.
///
/// A definite answer: the schema (HTTP 200), or no such revision — HTTP 4xx but for 401, 403,
/// 407 (the repository refuses Sluice: a configuration to mend), 408 and 429 (try later) — and a
/// body too large to be a schema. Anything else (no connection, a timeout, HTTP 5xx and the
/// 4xx above, a certificate refused) is a failure, retried with backoff (1 s doubling to 30 s)
/// the next time the revision is asked for — never a reason to dead-letter. One log line when
/// the repository stops answering, one when it answers again (DESIGN.md invariant 8).
/// Thread safety: every method from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/clock.h"

namespace sluice::ingest {

/// What the schema registry asks of a repository (SchemaRepository; unit tests fake it).
class SchemaSource {
 public:
  enum class State { kPending, kFound, kNotFound };
  struct Answer {
    State state = State::kPending;
    std::string text;    ///< kFound: the schema document
    std::string detail;  ///< kNotFound: why ("HTTP 404"); kPending: the last failure, if any
    /// kPending after a failure: when the next fetch may start (asking sooner changes nothing).
    Clock::time_point retry_at{};
  };
  struct Stats {
    uint64_t fetched = 0;    ///< answers found
    uint64_t not_found = 0;  ///< definite answers of no schema
    uint64_t failures = 0;   ///< fetches that got no answer
    size_t waiting = 0;      ///< revisions asked for and not answered yet
    bool reachable = true;   ///< the last fetch got an answer
    std::string last_error;  ///< of the last failure
  };
  virtual ~SchemaSource() = default;
  /// Never blocks. The first call for a revision starts its fetch; a found or not-found answer
  /// is handed out once (the registry keeps what it needs of it).
  virtual Answer ask(std::string_view name, int64_t revision) = 0;
  /// Where the revision is fetched from (for messages).
  virtual std::string url_for(std::string_view name, int64_t revision) const = 0;
  /// Where the repository is ("" for none known).
  virtual std::string url() const = 0;
  virtual Stats stats() const = 0;
  /// Fetches finished so far (answered or failed): when it moves, a pending revision may have
  /// its answer.
  virtual uint64_t completed() const = 0;
};

struct SchemaRepositoryOptions {
  std::string url{};      ///< no trailing slash
  std::string ca_file{};  ///< empty: the system's CAs
  std::chrono::milliseconds timeout{10'000};
  size_t max_bytes = 1 << 20;
};

class SchemaRepository final : public SchemaSource {
 public:
  /// Revisions asked for and not yet handed out, at most: past it, a new one is "pending"
  /// without a fetch until some are answered (a stream of distinct hostile names cannot grow
  /// the memory).
  static constexpr size_t kMaxTracked = 1024;
  static constexpr std::chrono::minutes kForgetAfter{5};

  explicit SchemaRepository(SchemaRepositoryOptions options,
                            const Clock& clock = SystemClock::instance());
  ~SchemaRepository() override;
  SchemaRepository(const SchemaRepository&) = delete;
  SchemaRepository& operator=(const SchemaRepository&) = delete;

  Answer ask(std::string_view name, int64_t revision) override;
  std::string url_for(std::string_view name, int64_t revision) const override;

  std::string url() const override { return options_.url; }
  Stats stats() const override;
  uint64_t completed() const override { return completed_.load(); }

 private:
  enum class Step { kQueued, kFetching, kAnswered, kFailed };
  struct Entry {
    std::string name;
    int64_t revision = 0;
    Step step = Step::kQueued;
    Answer answer;
    int failures = 0;
    Clock::time_point retry_at{};
    Clock::time_point last_asked{};
  };

  void run();
  /// Drops entries nobody asked for lately (an event held, then revoked or dead-lettered
  /// elsewhere, never asks again): answered or failed ones after kForgetAfter. Under mu_.
  void forget_idle(Clock::time_point now);
  /// Revisions asked for and not answered yet. Under mu_.
  size_t unanswered() const;
  /// One fetch, blocking (the fetch thread only): kPending with `detail` when it failed.
  Answer fetch(const std::string& url);

  const SchemaRepositoryOptions options_;
  const Clock& clock_;
  void* curl_ = nullptr;  ///< the fetch thread's CURL handle (kept: connections are reused)

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, Entry> entries_;  ///< by "<name>\0<revision>"; guarded by mu_
  std::deque<std::string> queue_;         ///< keys to fetch; guarded by mu_
  Stats stats_;                           ///< guarded by mu_ (waiting: see stats())
  bool stop_ = false;                     ///< guarded by mu_
  std::atomic<bool> stopping_{false};     ///< aborts a fetch in progress at destruction
  std::atomic<uint64_t> completed_{0};
  Clock::time_point forgot_at_{};         ///< guarded by mu_
  std::thread thread_;
};

}  // namespace sluice::ingest
