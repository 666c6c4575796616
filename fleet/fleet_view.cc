#include "fleet/fleet_view.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace sluice::fleet {

using nlohmann::json;

namespace {

/// How many target ids are remembered to refuse replays (a pause or a resume each).
constexpr size_t kTargetIdsKept = 4096;

}  // namespace

std::string encode(const Target& t) {
  return json{{"state", t.paused ? "paused" : "running"},
              {"reason", t.reason},
              {"since_ms", t.since_ms},
              {"by", t.by},
              {"id", t.id},
              {"epoch", t.epoch},
              {"mariadb", t.mariadb},
              {"server", t.server}}
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
              {"seq", r.seq},
              {"lease_ms", r.lease_ms},
              {"mariadb", r.mariadb},
              {"server", r.server},
              {"partitions", std::move(partitions)},
              {"spooled", std::move(spooled)},
              {"spool_events", r.spool_events}}
      .dump();
}

std::string forgotten_value(const std::string& id) {
  return json{{"id", id}, {"forgotten", true}}.dump();
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
    t.epoch = j.value("epoch", uint64_t{0});
    t.mariadb = j.value("mariadb", "");
    t.server = j.value("server", "");
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
    r.seq = j.value("seq", uint64_t{0});
    r.lease_ms = std::max<int64_t>(0, j.value("lease_ms", int64_t{0}));
    r.mariadb = j.value("mariadb", "");
    r.server = j.value("server", "");
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

std::string instance_key(const std::string& id) { return std::string(kInstancePrefix) + id; }

FleetView::FleetView(std::string self, Duration instance_timeout, ViewLimits limits)
    : self_(std::move(self)), instance_timeout_(instance_timeout), limits_(limits) {}

void FleetView::apply(const std::string& key, const std::optional<std::string>& value,
                      int64_t offset, bool own, SteadyTime now) {
  if (value && value->size() > limits_.max_record_bytes) {
    ++over_limits_;
  } else if (key == kTargetKey) {
    if (value) {
      apply_target(*value, offset);
    } else {
      ++unreadable_;  // the target is never deleted, only replaced
    }
  } else if (key.starts_with(kInstancePrefix)) {
    apply_instance(key.substr(kInstancePrefix.size()), value, offset);
  } else if (key != kProbeKey) {
    ++unreadable_;
  }
  if (own) mark_own(now);
}

void FleetView::apply_target(const std::string& value, int64_t offset) {
  auto t = decode_target(value);
  if (!t || t->id.empty()) {
    ++unreadable_;
    return;
  }
  // An old target written again — by whoever can write to the topic — must not flip the
  // fleet back: targets count up, and each id is applied once.
  if (target_ids_.contains(t->id) || (target_ && t->epoch < target_->epoch)) {
    ++replayed_;
    return;
  }
  if (target_order_.size() >= kTargetIdsKept) {
    target_ids_.erase(target_order_.front());
    target_order_.pop_front();
  }
  target_ids_.insert(t->id);
  target_order_.push_back(t->id);
  target_ = std::move(t).value();
  target_offset_ = offset;
  // What each instance had said before this target: an instance that has not read it can
  // only have renewed its lease with one of these records (or earlier ones).
  for (auto& [id, s] : seen_) {
    s.before_target = true;
    s.bound_before_target = s.bound;
    s.lease_before_target = records_.at(id).lease_ms;
    s.heard_since_target = false;
  }
}

void FleetView::apply_instance(const std::string& id, const std::optional<std::string>& value,
                               int64_t offset) {
  if (!value) {
    remove(id);
    return;
  }
  const auto j = json::parse(*value, nullptr, false);
  if (j.is_object() && j.value("forgotten", false) && j.value("id", "") == id) {
    remove(id);
    return;
  }
  auto r = decode_instance(*value);
  if (!r || r->id != id) {
    ++unreadable_;
    return;
  }
  if (r->spooled.size() > limits_.max_spooled_ranges) {
    ++over_limits_;
    return;
  }
  const auto known = records_.find(id);
  if (known != records_.end() && known->second.incarnation == r->incarnation &&
      r->seq <= known->second.seq && r->seq != 0) {
    ++replayed_;  // the same run counts its records up: this one is old
    return;
  }
  if (known == records_.end() && records_.size() >= limits_.max_instances) {
    ++over_limits_;
    return;
  }
  records_[id] = std::move(r).value();
  Seen& s = seen_[id];
  s.offset = offset;
  s.bound.reset();
  if (s.before_target) s.heard_since_target = true;
}

void FleetView::remove(const std::string& id) {
  records_.erase(id);
  seen_.erase(id);
}

void FleetView::mark_own(SteadyTime now) {
  for (auto& [id, s] : seen_) {
    if (!s.bound) s.bound = now;
    if (s.before_target && !s.bound_before_target) s.bound_before_target = now;
  }
}

std::optional<FleetView::Duration> FleetView::silent_for(const std::string& id,
                                                         SteadyTime now) const {
  const auto it = seen_.find(id);
  if (it == seen_.end()) return std::nullopt;
  if (!it->second.bound) return Duration(0);
  return std::chrono::duration_cast<Duration>(now - *it->second.bound);
}

bool FleetView::lease_over(const InstanceRecord& r, const Seen& s, SteadyTime now) const {
  if (!s.bound) return false;
  const Duration limit = r.lease_ms > 0 ? Duration(r.lease_ms) + kFenceGrace : instance_timeout_;
  return now - *s.bound >= limit;
}

bool FleetView::live(const std::string& id, SteadyTime now) const {
  const auto r = records_.find(id);
  const auto s = seen_.find(id);
  if (r == records_.end() || s == seen_.end()) return false;
  if (r->second.state == "stopped") return false;
  return !lease_over(r->second, s->second, now);
}

Status FleetView::forgettable(const std::string& id, SteadyTime now) const {
  if (id == self_) return Status::error("an instance cannot forget itself");
  const auto r = records_.find(id);
  const auto s = seen_.find(id);
  if (r == records_.end() || s == seen_.end()) {
    return Status::error("no instance " + id + " is known");
  }
  const auto silent = silent_for(id, now).value_or(Duration(0));
  if (r->second.state == "stopped" && lease_over(r->second, s->second, now)) return Status::ok();
  if (silent >= instance_timeout_ &&
      (r->second.lease_ms == 0 || silent >= 2 * (Duration(r->second.lease_ms) + kFenceGrace))) {
    return Status::ok();
  }
  return Status::error(
      "instance " + id + " was heard from " + std::to_string(silent.count() / 1000) +
      " s ago: it may be running, or cut off for a moment and still holding its spool; stop it "
      "(a clean stop records it), or wait until it has been silent for fleet.instance_timeout_ms");
}

std::vector<std::string> FleetView::pending(const std::string& target_id, bool pause,
                                            SteadyTime now) const {
  std::vector<std::string> out;
  for (const auto& [id, r] : records_) {
    const Seen& s = seen_.at(id);
    if (r.applied == target_id && (!pause || r.quiet)) continue;
    if (!pause) {
      if (live(id, now)) out.push_back(id);
      continue;
    }
    // An instance first heard of after the target has read it before it could renew a lease:
    // it never wrote since. One heard of before has renewed its lease at most with its last
    // record before the target, so its lease (and the grace) since then bounds its writes.
    if (!s.before_target) continue;
    if (s.bound_before_target) {
      const Duration limit = s.lease_before_target > 0
                                 ? Duration(s.lease_before_target) + kFenceGrace
                                 : instance_timeout_;
      if (now - *s.bound_before_target >= limit) continue;
    }
    out.push_back(id);
  }
  return out;
}

bool FleetView::heard_since_target(const std::string& id) const {
  const auto it = seen_.find(id);
  return it != seen_.end() && it->second.heard_since_target;
}

std::optional<int64_t> FleetView::first_claimed(const std::string& topic, int32_t partition,
                                                int64_t from, int64_t to) const {
  std::optional<int64_t> first;
  for (const auto& [id, r] : records_) {
    if (id == self_) continue;
    for (const auto& s : r.spooled) {
      if (s.topic != topic || s.partition != partition || s.events == 0) continue;
      if (s.first >= to || s.last < from) continue;
      const int64_t at = std::max(from, s.first);
      if (!first || at < *first) first = at;
    }
  }
  return first;
}

bool same_server(const std::string& endpoint_a, const std::string& server_a,
                 const std::string& endpoint_b, const std::string& server_b) {
  if (!server_a.empty() && !server_b.empty()) return server_a == server_b;
  return endpoint_a.empty() || endpoint_b.empty() || endpoint_a == endpoint_b;
}

std::vector<std::pair<std::string, std::string>> FleetView::other_servers(
    const std::string& endpoint, const std::string& server, SteadyTime now) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [id, r] : records_) {
    if (id == self_ || !live(id, now) || same_server(endpoint, server, r.mariadb, r.server)) {
      continue;
    }
    out.emplace_back(id, r.mariadb + (r.server.empty() ? "" : " (server " + r.server + ")"));
  }
  return out;
}

}  // namespace sluice::fleet
