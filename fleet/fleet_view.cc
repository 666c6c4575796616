#include "fleet/fleet_view.h"

#include <nlohmann/json.hpp>

namespace sluice::fleet {

using nlohmann::json;

std::string encode(const Target& t) {
  return json{{"state", t.paused ? "paused" : "running"},
              {"reason", t.reason},
              {"since_ms", t.since_ms},
              {"by", t.by},
              {"id", t.id}}
      .dump();
}

json spooled_json(const InstanceRecord& r) {
  json out = json::array();
  for (const auto& s : r.spooled) {
    out.push_back({{"topic", s.topic},
                   {"partition", s.partition},
                   {"first_offset", s.first},
                   {"last_offset", s.last},
                   {"events", s.events}});
  }
  return out;
}

std::string encode(const InstanceRecord& r) {
  json partitions = json::array();
  for (const auto& [topic, p] : r.partitions) partitions.push_back({topic, p});
  json spooled = json::array();
  for (const auto& s : r.spooled) {
    spooled.push_back({{"topic", s.topic},
                       {"partition", s.partition},
                       {"first", s.first},
                       {"last", s.last},
                       {"events", s.events}});
  }
  return json{{"id", r.id},
              {"state", r.state},
              {"quiet", r.quiet},
              {"applied", r.applied},
              {"admin", r.admin},
              {"version", r.version},
              {"incarnation", r.incarnation},
              {"started_ms", r.started_ms},
              {"wall_ms", r.wall_ms},
              {"partitions", std::move(partitions)},
              {"spooled", std::move(spooled)},
              {"spool_events", r.spool_events}}
      .dump();
}

Result<Target> decode_target(std::string_view text) {
  const auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("state") || !j["state"].is_string()) {
    return Status::error("not a target record");
  }
  try {
    Target t;
    t.paused = j["state"].get<std::string>() == "paused";
    t.reason = j.value("reason", "");
    t.since_ms = j.value("since_ms", int64_t{0});
    t.by = j.value("by", "");
    t.id = j.value("id", "");
    return t;
  } catch (const json::exception& e) {
    return Status::error(std::string("target record: ") + e.what());
  }
}

Result<InstanceRecord> decode_instance(std::string_view text) {
  const auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) {
    return Status::error("not an instance record");
  }
  try {
    InstanceRecord r;
    r.id = j["id"].get<std::string>();
    r.state = j.value("state", "");
    r.quiet = j.value("quiet", false);
    r.applied = j.value("applied", "");
    r.admin = j.value("admin", "");
    r.version = j.value("version", "");
    r.incarnation = j.value("incarnation", "");
    r.started_ms = j.value("started_ms", int64_t{0});
    r.wall_ms = j.value("wall_ms", int64_t{0});
    r.spool_events = j.value("spool_events", uint64_t{0});
    for (const auto& p : j.value("partitions", json::array())) {
      r.partitions.emplace_back(p.at(0).get<std::string>(), p.at(1).get<int32_t>());
    }
    for (const auto& s : j.value("spooled", json::array())) {
      r.spooled.push_back({s.at("topic").get<std::string>(), s.at("partition").get<int32_t>(),
                           s.at("first").get<int64_t>(), s.at("last").get<int64_t>(),
                           s.value("events", uint64_t{0})});
    }
    return r;
  } catch (const json::exception& e) {
    return Status::error(std::string("instance record: ") + e.what());
  }
}

std::string instance_key(const std::string& id) { return "instance/" + id; }

FleetView::FleetView(std::chrono::milliseconds timeout, std::chrono::milliseconds skew)
    : timeout_(timeout), skew_(skew) {}

void FleetView::apply(std::string_view key, const std::optional<std::string>& value,
                      SteadyTime now) {
  if (key == kTargetKey) {
    if (!value) {
      target_.reset();
      return;
    }
    auto t = decode_target(*value);
    if (!t) {
      ++unreadable_;
      return;
    }
    target_ = std::move(t).value();
    return;
  }
  constexpr std::string_view kPrefix = "instance/";
  if (!key.starts_with(kPrefix)) {
    ++unreadable_;
    return;
  }
  const std::string id(key.substr(kPrefix.size()));
  if (!value) {
    instances_.erase(id);
    seen_.erase(id);
    return;
  }
  auto r = decode_instance(*value);
  if (!r || r->id != id) {
    ++unreadable_;
    return;
  }
  instances_[id] = std::move(r).value();
  seen_[id] = now;
}

bool FleetView::live(const std::string& id, SteadyTime now, int64_t now_wall_ms) const {
  const auto it = instances_.find(id);
  const auto seen = seen_.find(id);
  if (it == instances_.end() || seen == seen_.end()) return false;
  if (it->second.state == "stopped") return false;
  if (now - seen->second > timeout_) return false;
  return now_wall_ms - it->second.wall_ms <= (timeout_ + skew_).count();
}

double FleetView::age_s(const std::string& id, SteadyTime now) const {
  const auto seen = seen_.find(id);
  if (seen == seen_.end()) return -1;
  return std::chrono::duration<double>(now - seen->second).count();
}

std::vector<std::string> FleetView::pending(const std::string& target_id, bool pause,
                                            SteadyTime now, int64_t now_wall_ms) const {
  std::vector<std::string> out;
  for (const auto& [id, r] : instances_) {
    if (!live(id, now, now_wall_ms)) continue;
    const bool done = r.applied == target_id && (!pause || r.quiet);
    if (!done) out.push_back(id);
  }
  return out;
}

bool FleetView::claimed_elsewhere(const std::string& self, const std::string& topic,
                                  int32_t partition, int64_t from, int64_t to) const {
  for (const auto& [id, r] : instances_) {
    if (id == self) continue;
    for (const auto& s : r.spooled) {
      if (s.topic == topic && s.partition == partition && s.events > 0 && s.first < to &&
          s.last >= from) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace sluice::fleet
