#include "main/fleet_command.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "fleet/fleet_view.h"
#include "fleet/kafka_control_channel.h"

namespace sluice::cli {
namespace {

using namespace std::chrono_literals;

}  // namespace

int fleet_command(const FleetOptions& o) {
  auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  auto channel = fleet::KafkaControlChannel::open(
      {config->kafka.brokers, config->fleet.topic, config->kafka.properties, "sluice-fleet-cli"});
  if (!channel) {
    std::cerr << "sluice: " << channel.status().message() << "\n";
    return 1;
  }
  fleet::FleetView view{std::chrono::milliseconds(config->fleet.instance_timeout_ms)};
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!(*channel)->caught_up()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::cerr << "sluice: the fleet topic " << config->fleet.topic << " could not be read\n";
      return 1;
    }
    std::vector<fleet::ControlRecord> records;
    (void)(*channel)->poll(200ms, records);
    for (const auto& r : records) view.apply(r.key, r.value, std::chrono::steady_clock::now());
  }
  // What was read at once stands for records read just now: give heartbeats a moment to come.
  for (int i = 0; i < 5; ++i) {
    std::vector<fleet::ControlRecord> records;
    (void)(*channel)->poll(200ms, records);
    for (const auto& r : records) view.apply(r.key, r.value, std::chrono::steady_clock::now());
  }
  const auto now = std::chrono::steady_clock::now();
  const int64_t wall = SystemClock::instance().wall_ms();

  if (o.action == "status") {
    nlohmann::json out = {{"topic", config->fleet.topic}, {"instances", nlohmann::json::array()}};
    if (const auto& t = view.target()) {
      out["target"] = {{"state", t->paused ? "paused" : "running"},
                       {"reason", t->reason},
                       {"by", t->by},
                       {"since_ms", t->since_ms}};
    }
    for (const auto& [id, r] : view.instances()) {
      auto spooled = spooled_json(r);
      out["instances"].push_back({{"id", id},
                                  {"state", r.state},
                                  {"live", view.live(id, now, wall)},
                                  {"written_s_ago", (wall - r.wall_ms) / 1000},
                                  {"spool_events", r.spool_events},
                                  {"spooled", std::move(spooled)}});
    }
    if (o.json) {
      std::cout << out.dump() << "\n";
      return 0;
    }
    std::cout << "fleet topic " << config->fleet.topic << ", target: "
              << (out.contains("target") ? out["target"]["state"].get<std::string>() : "not set")
              << "\n";
    for (const auto& i : out["instances"]) {
      std::cout << "  " << i["id"].get<std::string>() << ": " << i["state"].get<std::string>()
                << (i["live"].get<bool>()
                        ? " (live)"
                        : " (not heard from for " +
                              std::to_string(i["written_s_ago"].get<int64_t>()) + " s)")
                << ", spool " << i["spool_events"].get<uint64_t>() << " events\n";
      for (const auto& s : i["spooled"]) {
        std::cout << "      " << s["topic"].get<std::string>() << "/" << s["partition"].get<int>()
                  << " offsets " << s["first_offset"].get<int64_t>() << ".."
                  << s["last_offset"].get<int64_t>() << "\n";
      }
    }
    return 0;
  }

  // forget
  const auto it = view.instances().find(o.instance);
  if (it == view.instances().end()) {
    std::cerr << "sluice: no instance '" << o.instance << "' in the fleet topic "
              << config->fleet.topic << "\n";
    return 4;
  }
  if (view.live(o.instance, now, wall)) {
    std::cerr << "sluice: instance '" << o.instance
              << "' is alive (its heartbeat is recent): stop it first; nothing changed\n";
    return 4;
  }
  const auto& r = it->second;
  std::cout << "instance " << o.instance << " (" << r.state << ", last heard from "
            << (wall - r.wall_ms) / 1000 << " s ago) will be forgotten.\n";
  if (r.spooled.empty()) {
    std::cout << "Its spool held nothing.\n";
  } else {
    std::cout << "Its spool held, when last heard from:\n";
    for (const auto& s : r.spooled) {
      std::cout << "  " << s.topic << "/" << s.partition << " offsets " << s.first << ".." << s.last
                << " (" << s.events << " events)\n";
    }
    std::cout << "Once forgotten, what Kafka still has of these is read again by the partitions'\n"
                 "owners; what expired from Kafka is recorded as lost (kafka_gap). Export that\n"
                 "spool first if its disk can still be read (sluice spool export --path ...).\n";
  }
  if (!o.confirm) {
    std::cout << "Nothing changed. Run again with --confirm to forget it.\n";
    return 0;
  }
  if (auto st = (*channel)->publish(fleet::instance_key(o.instance), std::nullopt); !st) {
    std::cerr << "sluice: " << st.message() << "\n";
    return 1;
  }
  std::cout << "instance " << o.instance << " forgotten\n";
  return 0;
}

}  // namespace sluice::cli
