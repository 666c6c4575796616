#pragma once
/// The fleet topic as a command reads it (`sluice fleet`, `sluice offsets`): every record up to
/// a probe the command writes and reads back, so that silence is measured by this host's clock
/// alone (fleet_view.h).

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "common/config.h"
#include "fleet/fleet_view.h"
#include "fleet/kafka_control_channel.h"
#include "fleet/record_signer.h"

namespace sluice::cli {

/// The fleet topic read by a command, with a clock of its own in the topic: a probe record it
/// writes and reads back tells, by this host's clock alone, since when every instance has been
/// silent (fleet_view.h).
class FleetReader {
 public:
  explicit FleetReader(const Config& config)
      : view_("", std::chrono::milliseconds(config.fleet.instance_timeout_ms)) {}

  /// The key (fleet.key_file), the topic, and every record up to a probe of its own; on
  /// failure an exit code (2 bad key file, 1 Kafka) and a message on stderr.
  int open_and_catch_up(const Config& config) {
    if (!config.fleet.key_file.empty()) {
      auto s = fleet::RecordSigner::from_file(config.fleet.key_file);
      if (!s) {
        std::cerr << "sluice: invalid configuration: " << s.status().message() << "\n";
        return 2;
      }
      signer_ = std::move(s).value();
    }
    if (auto st = open(config); !st) {
      std::cerr << "sluice: " << st.message() << "\n";
      return 1;
    }
    if (auto st = catch_up(config.fleet.topic); !st) {
      std::cerr << "sluice: " << st.message() << "\n";
      return 1;
    }
    return 0;
  }

  Status open(const Config& config) {
    auto channel = fleet::KafkaControlChannel::open({config.kafka.brokers, config.fleet.topic,
                                                     config.kafka.properties, "sluice-fleet-cli"});
    if (!channel) return channel.status();
    channel_ = std::move(channel).value();
    return Status::ok();
  }

  /// Reads up to the topic's end, then writes a probe and reads until it comes back.
  Status catch_up(const std::string& topic) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!channel_->caught_up()) {
      if (std::chrono::steady_clock::now() >= deadline) return Status::error("the fleet topic " + topic + " could not be read");
      poll(std::chrono::milliseconds(200));
    }
    std::mt19937_64 rng(std::random_device{}());
    probe_ = nlohmann::json{{"probe", std::to_string(rng())}}.dump();
    const std::string key = std::string(fleet::kProbeKey);
    if (auto st = channel_->publish(key, signer_.seal(key, probe_)); !st) return st;
    while (!probe_read_) {
      if (std::chrono::steady_clock::now() >= deadline) return Status::error("the fleet topic " + topic + " did not answer");
      poll(std::chrono::milliseconds(200));
    }
    return Status::ok();
  }

  void poll(std::chrono::milliseconds timeout) {
    std::vector<fleet::ControlRecord> records;
    (void)channel_->poll(timeout, records);
    for (const auto& r : records) {
      std::optional<std::string> body;
      if (r.value) {
        auto opened = signer_.open(r.key, *r.value);
        if (!opened) {
          ++rejected_;
          continue;
        }
        body = std::move(opened).value();
      } else if (signer_.enabled()) {
        ++rejected_;
        continue;
      }
      const bool own = r.key == fleet::kProbeKey && body && *body == probe_;
      probe_read_ = probe_read_ || own;
      view_.apply(r.key, body, r.offset, own, std::chrono::steady_clock::now());
    }
  }

  fleet::ControlChannel& channel() { return *channel_; }
  const fleet::FleetView& view() const { return view_; }
  const fleet::RecordSigner& signer() const { return signer_; }
  uint64_t rejected() const { return rejected_; }

 private:
  fleet::RecordSigner signer_;
  std::unique_ptr<fleet::ControlChannel> channel_;
  fleet::FleetView view_;
  std::string probe_;
  bool probe_read_ = false;
  uint64_t rejected_ = 0;
};

}  // namespace sluice::cli
