#pragma once
/// The fleet's seams for unit tests: the control topic (FakeControlTopic, its FakeControlChannel
/// clients, a topic that can be cut off) and the fleet as a pipeline sees it (FakeFleetClaims).

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "fleet/control_channel.h"
#include "ingest/fleet_claims.h"

namespace sluice::testing {

using PartitionKey = std::pair<std::string, int32_t>;

// --- The fleet's control topic -----------------------------------------------------------------

/// The fleet's control topic: one log of keyed records that several FakeControlChannels read
/// from the beginning and write to; each record's offset is its index. Thread safe (fleets
/// publish from admin threads).
class FakeControlTopic {
 public:
  /// Appends a record; returns its offset.
  int64_t append(fleet::ControlRecord r);
  /// Records from `from` on.
  std::vector<fleet::ControlRecord> read(size_t from) const;
  size_t size() const;
  /// While unreachable, publish and poll fail for every channel (a Kafka outage).
  void set_reachable(bool reachable);
  bool reachable() const;

 private:
  mutable std::mutex mu_;
  std::vector<fleet::ControlRecord> log_;
  bool reachable_ = true;
};

/// One instance's link to the topic. Its link can be cut on its own — reads, writes, or both —
/// as a network partition of that host alone would.
class FakeControlChannel final : public fleet::ControlChannel {
 public:
  explicit FakeControlChannel(FakeControlTopic& topic)
      : topic_(topic), end_at_open_(topic.size()) {}
  Status publish(const std::string& key, const std::optional<std::string>& value) override;
  Status send(const std::string& key, const std::string& value) override;
  Status poll(std::chrono::milliseconds timeout, std::vector<fleet::ControlRecord>& out) override;
  bool caught_up() const override { return next_ >= end_at_open_; }

  /// Cuts (or heals) this channel's reads and writes. Safe from any thread.
  void cut(bool reads, bool writes) {
    cut_reads_ = reads;
    cut_writes_ = writes;
  }

 private:
  FakeControlTopic& topic_;
  size_t end_at_open_;
  size_t next_ = 0;
  std::atomic<bool> cut_reads_{false};
  std::atomic<bool> cut_writes_{false};
};

/// The fleet as a pipeline sees it (ingest::FleetClaims): ranges other spools claim, and
/// whether a later twin runs. Thread safe.
class FakeFleetClaims final : public ingest::FleetClaims {
 public:
  /// Another spool holds offsets [first, last] of the partition.
  void claim(const std::string& topic, int32_t partition, int64_t first, int64_t last);
  void clear();
  void set_later_twin(bool running) { later_twin_ = running; }
  std::optional<int64_t> first_claimed(const std::string& topic, int32_t partition, int64_t from,
                                       int64_t to) const override;
  bool outlives_a_later_twin() const override { return later_twin_; }
  bool knows_claims() const override { return knows_; }
  void set_knows_claims(bool knows) { knows_ = knows; }

 private:
  struct Range {
    PartitionKey key;
    int64_t first, last;
  };
  mutable std::mutex mu_;
  std::vector<Range> ranges_;
  std::atomic<bool> later_twin_{false};
  std::atomic<bool> knows_{true};
};

}  // namespace sluice::testing
