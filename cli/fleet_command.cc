#include "cli/fleet_command.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/logging.h"
#include "cli/fleet_reader.h"

namespace sluice::cli {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
using Reader = FleetReader;

int status(const Config& config, Reader& reader, bool as_json) {
  const auto now = Steady::now();
  const auto& view = reader.view();
  nlohmann::json out = {{"topic", config.fleet.topic},
                        {"records_rejected", reader.rejected()},
                        {"instances", nlohmann::json::array()}};
  if (const auto& t = view.target()) {
    out["target"] = {{"state", t->paused ? "paused" : "running"},
                     {"reason", t->reason},
                     {"by", t->by},
                     {"since_ms", t->since_ms},
                     {"mariadb", t->mariadb}};
  }
  for (const auto& [id, r] : view.instances()) {
    const auto silent = view.silent_for(id, now).value_or(0ms);
    out["instances"].push_back({{"id", id},
                                {"state", r.state},
                                {"live", view.live(id, now)},
                                {"silent_s", silent.count() / 1000},
                                {"mariadb", r.mariadb},
                                {"spool_events", r.spool_events},
                                {"spooled", fleet::spooled_json(r)}});
  }
  if (as_json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << "fleet topic " << config.fleet.topic << ", target: "
            << (out.contains("target") ? out["target"]["state"].get<std::string>() : "not set")
            << "\n";
  if (reader.rejected() > 0) {
    std::cout << "  " << reader.rejected()
              << " record(s) not signed with fleet.key_file were ignored\n";
  }
  for (const auto& i : out["instances"]) {
    std::cout << "  " << i["id"].get<std::string>() << ": " << i["state"].get<std::string>()
              << (i["live"].get<bool>()
                      ? " (live)"
                      : " (silent for at least " +
                            std::to_string(i["silent_s"].get<int64_t>()) + " s)")
              << ", spool " << i["spool_events"].get<uint64_t>() << " events\n";
    for (const auto& s : i["spooled"]) {
      std::cout << "      " << s["topic"].get<std::string>() << "/" << s["partition"].get<int>()
                << " offsets " << s["first_offset"].get<int64_t>() << ".."
                << s["last_offset"].get<int64_t>() << "\n";
    }
  }
  return 0;
}

int forget(const Config& config, Reader& reader, const FleetOptions& o) {
  const auto& view = reader.view();
  if (!view.instances().contains(o.instance)) {
    std::cerr << "sluice: no instance '" << o.instance << "' in the fleet topic "
              << config.fleet.topic << "\n";
    return 4;
  }
  // Silence is measured here, by this host's clock, from the probe on: an instance merely cut
  // off for a moment must not be forgotten while its spool holds events.
  const auto& r = view.instances().at(o.instance);
  const auto lease = std::chrono::milliseconds(std::max<int64_t>(r.lease_ms, 0));
  const auto wait = std::max(std::chrono::milliseconds(config.fleet.instance_timeout_ms),
                             2 * (lease + fleet::kFenceGrace));
  Status ok = view.forgettable(o.instance, Steady::now());
  if (!ok) {
    std::cout << "watching instance " << o.instance << " for up to " << wait.count() / 1000
              << " s to make sure it is silent (Ctrl-C to give up)...\n";
    const auto deadline = Steady::now() + wait + 1s;
    while (!ok && Steady::now() < deadline) {
      reader.poll(500ms);
      if (!view.instances().contains(o.instance)) {
        std::cout << "instance " << o.instance << " was forgotten meanwhile\n";
        return 0;
      }
      ok = view.forgettable(o.instance, Steady::now());
    }
  }
  if (!ok) {
    std::cerr << "sluice: " << ok.message() << "; nothing changed\n";
    return 4;
  }
  const auto& last = view.instances().at(o.instance);
  std::cout << "instance " << o.instance << " (" << last.state << ", silent for at least "
            << view.silent_for(o.instance, Steady::now()).value_or(0ms).count() / 1000
            << " s) will be forgotten.\n";
  if (last.spooled.empty()) {
    std::cout << "Its spool held nothing.\n";
  } else {
    std::cout << "Its spool held, when last heard from:\n";
    for (const auto& s : last.spooled) {
      std::cout << "  " << s.topic << "/" << s.partition << " offsets " << s.first << ".."
                << s.last << " (" << s.events << " events)\n";
    }
    std::cout << "Once forgotten, what Kafka still has of these is read again by the partitions'\n"
                 "owners; what expired from Kafka is recorded as lost (kafka_gap). Export that\n"
                 "spool first if its disk can still be read (sluice spool export --path ...).\n";
  }
  if (!o.confirm) {
    std::cout << "Nothing changed. Run again with --confirm to forget it.\n";
    return 0;
  }
  const std::string key = fleet::instance_key(o.instance);
  const auto value = reader.signer().enabled()
                         ? std::optional<std::string>(
                               reader.signer().seal(key, fleet::forgotten_value(o.instance)))
                         : std::nullopt;
  if (auto st = reader.channel().publish(key, value); !st) {
    std::cerr << "sluice: " << st.message() << "\n";
    return 1;
  }
  std::cout << "instance " << o.instance << " forgotten\n";
  return 0;
}

}  // namespace

int fleet_command(const FleetOptions& o) {
  auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return 2;
  }
  // A command's output is its answer: the clients' own chatter (a coordinator still loading, a
  // topic created) is not, only their errors are.
  configure_logging("error", config->log.json);
  Reader reader(*config);
  if (const int code = reader.open_and_catch_up(*config)) return code;
  return o.action == "status" ? status(*config, reader, o.json) : forget(*config, reader, o);
}

}  // namespace sluice::cli
