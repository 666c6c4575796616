#pragma once
/// A schema repository in memory, behind ingest::SchemaSource, for unit tests: revisions are
/// served from a map; while "down" every ask is pending with a failure, as the real repository
/// answers while it cannot reach its server; a revision asked for the first time is pending
/// once (the real one answers on its own thread, never in the asking call). Given a clock, a
/// down repository fails as the real one does: one attempt, then nothing until its backoff
/// (1 s doubling to 30 s) is over, with retry_at saying when; without one, every ask is an
/// attempt (a harsher neighbour: news at every ask).
/// Thread safety: one thread (the test's).

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "ingest/schema_id.h"
#include "ingest/schema_repository.h"

namespace sluice::testing {

class FakeSchemaSource final : public ingest::SchemaSource {
 public:
  /// Serves `text` for the revision from now on.
  void put(const std::string& name, int64_t revision, std::string text) {
    docs_[{name, revision}] = std::move(text);
  }
  void set_down(bool down) { down_ = down; }
  /// Down for the next `asks` asks, then up.
  void set_down_for(int asks) { down_for_ = asks; }
  /// How many times a revision was answered (found or not found).
  int answers(const std::string& name, int64_t revision) const {
    const auto it = answered_.find({name, revision});
    return it == answered_.end() ? 0 : it->second;
  }

  FakeSchemaSource() = default;
  explicit FakeSchemaSource(const Clock& clock) : clock_(&clock) {}

  Answer ask(std::string_view name, int64_t revision) override {
    const std::pair<std::string, int64_t> key{std::string(name), revision};
    Answer out;
    if (down_ || down_for_-- > 0) {
      out.detail = "Connection refused";
      if (clock_ != nullptr) {
        const auto now = clock_->now();
        if (now < retry_at_) {
          out.retry_at = retry_at_;  // no attempt before the backoff is over
          return out;
        }
        backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(30'000));
        retry_at_ = now + backoff_;
        out.retry_at = retry_at_;
      }
      ++completed_;
      ++stats_.failures;
      stats_.reachable = false;
      stats_.last_error = url_for(name, revision) + ": Connection refused";
      return out;
    }
    backoff_ = std::chrono::milliseconds(500);
    if (asked_.insert(key).second) return out;  // the fetch has only just started
    asked_.erase(key);
    ++completed_;
    stats_.reachable = true;
    ++answered_[key];
    if (const auto it = docs_.find(key); it != docs_.end()) {
      ++stats_.fetched;
      out.state = State::kFound;
      out.text = it->second;
    } else {
      ++stats_.not_found;
      out.state = State::kNotFound;
      out.detail = "HTTP 404";
    }
    return out;
  }
  std::string url_for(std::string_view name, int64_t revision) const override {
    return url() + "/" + ingest::schema_file(name, revision);
  }
  std::string url() const override { return "http://schemas.test"; }
  Stats stats() const override { return stats_; }
  uint64_t completed() const override { return completed_; }

 private:
  std::map<std::pair<std::string, int64_t>, std::string> docs_;
  std::set<std::pair<std::string, int64_t>> asked_;
  std::map<std::pair<std::string, int64_t>, int> answered_;
  const Clock* clock_ = nullptr;
  Clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{500};  ///< doubled before use: 1 s first
  bool down_ = false;
  int down_for_ = 0;
  Stats stats_;
  uint64_t completed_ = 0;
};

}  // namespace sluice::testing
