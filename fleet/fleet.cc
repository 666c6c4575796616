#include "fleet/fleet.h"

#include <algorithm>
#include <random>

#include "common/logging.h"

namespace sluice::fleet {

using std::chrono::milliseconds;

namespace {

std::string request_id() {
  std::random_device rd;
  const uint64_t v = (uint64_t{rd()} << 32) | rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string join(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

}  // namespace

Fleet::Fleet(FleetOptions options, std::unique_ptr<ControlChannel> channel, LocalInstance local,
             const Clock& clock)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      local_(std::move(local)),
      clock_(clock),
      view_(options_.instance_timeout),
      incarnation_(request_id()),
      started_ms_(clock.wall_ms()) {}

Fleet::~Fleet() { stop(); }

void Fleet::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Fleet::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  changed_.notify_all();
  thread_.join();
  {
    std::lock_guard lock(mu_);
    if (!conflict_.empty()) return;  // the record under this id is the other process's
  }
  // The last word: stopped, with whatever the spool still holds (its claims stay).
  InstanceRecord r = local_.describe();
  r.id = options_.instance_id;
  r.state = "stopped";
  r.quiet = true;
  r.partitions.clear();
  {
    std::lock_guard lock(mu_);
    r.applied = applied_;
  }
  r.wall_ms = clock_.wall_ms();
  r.version = options_.version;
  r.incarnation = incarnation_;
  r.started_ms = started_ms_;
  if (local_.admin) r.admin = local_.admin();
  std::lock_guard lock(publish_mu_);
  if (auto st = channel_->publish(instance_key(options_.instance_id), encode(r)); !st) {
    logger("fleet")->warn("could not say this instance stopped: {}", st.message());
  }
}

void Fleet::loop() {
  RateLimiter errors(std::chrono::seconds(30));
  while (!stop_.load()) {
    read(milliseconds(100));
    follow_target();
    publish_self(false);
  }
}

void Fleet::read(milliseconds timeout) {
  std::vector<ControlRecord> records;
  static thread_local RateLimiter limiter(std::chrono::seconds(30));
  if (auto st = channel_->poll(timeout, records); !st) {
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      logger("fleet")->warn("{} ({} similar suppressed)", st.message(), suppressed);
    }
  }
  if (!records.empty()) {
    const std::string own_key = instance_key(options_.instance_id);
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& r : records) {
      // Records of earlier runs of this instance are history; one written under its id after
      // it caught up is another process's.
      if (r.key == own_key && caught_up_.load()) check_own_key(r.value);
      view_.apply(r.key, r.value, now);
    }
  }
  if (channel_->caught_up() && !caught_up_.exchange(true)) {
    std::lock_guard lock(mu_);
    logger("fleet")->info(
        "fleet state read: target {}, {} instance record(s)",
        view_.target() ? (view_.target()->paused ? "paused" : "running") : "not set yet",
        view_.instances().size());
  }
  changed_.notify_all();
}

void Fleet::check_own_key(const std::optional<std::string>& value) {
  if (!value || !conflict_.empty()) return;
  const auto other = decode_instance(*value);
  if (!other || other->incarnation.empty() || other->incarnation == incarnation_) return;
  // The one that started later goes; a tie is broken by the incarnations.
  const bool other_older = other->started_ms < started_ms_ ||
                           (other->started_ms == started_ms_ && other->incarnation < incarnation_);
  if (!other_older) {
    later_twin_seen_ = clock_.now();
    static thread_local RateLimiter limiter(std::chrono::seconds(30));
    uint64_t suppressed = 0;
    if (!limiter.allow(suppressed)) return;
    logger("fleet")->error(
        "another process (admin {}) runs as instance '{}' too, started after this one: it must "
        "stop; give each instance of the group its own kafka.instance_id",
        other->admin.empty() ? "unknown" : other->admin, options_.instance_id);
    return;
  }
  conflict_ = "another instance runs with kafka.instance_id '" + options_.instance_id +
              "' (admin " + (other->admin.empty() ? "unknown" : other->admin) +
              "), started before this one: give each instance of the group its own; this one "
              "stops";
}

bool Fleet::outlives_a_later_twin() const {
  std::lock_guard lock(mu_);
  return later_twin_seen_ && clock_.now() - *later_twin_seen_ <= options_.instance_timeout;
}

Status Fleet::conflict() const {
  std::lock_guard lock(mu_);
  return conflict_.empty() ? Status::ok() : Status::error(conflict_);
}

void Fleet::follow_target() {
  if (!caught_up_.load()) return;  // quiet until the fleet's state is known
  if (applying_ && applying_->wait_for(milliseconds(0)) == std::future_status::ready) {
    const Status st = applying_->get();
    applying_.reset();
    std::lock_guard lock(mu_);
    if (st) {
      applied_ = following_;
    } else {
      logger("fleet")->warn("applying the fleet's target failed: {}; trying again", st.message());
      following_.clear();
    }
  }
  if (applying_) return;
  std::optional<Target> target;
  {
    std::lock_guard lock(mu_);
    target = view_.target();
  }
  if (!initial_done_) {
    initial_done_ = true;
    if (!target) {
      // No fleet-wide target was ever set: the instance's own state holds.
      applying_ = local_.release();
      return;
    }
  }
  if (!target) return;
  {
    std::lock_guard lock(mu_);
    if (target->id == following_ || target->id == applied_) return;
    following_ = target->id;
  }
  if (target->paused) {
    logger("fleet")->info("fleet paused by {} (\"{}\"): pausing", target->by, target->reason);
    applying_ = local_.pause(target->reason);
  } else {
    logger("fleet")->info("fleet resumed by {}: resuming", target->by);
    applying_ = local_.resume();
  }
}

void Fleet::publish_self(bool force) {
  InstanceRecord r = local_.describe();
  r.id = options_.instance_id;
  r.version = options_.version;
  r.incarnation = incarnation_;
  r.started_ms = started_ms_;
  if (local_.admin) r.admin = local_.admin();
  {
    std::lock_guard lock(mu_);
    r.applied = applied_;
  }
  const std::string content = encode(r);  // wall_ms 0: compares what changed
  const auto now = clock_.now();
  if (!force && content == last_published_ && now - last_heartbeat_ < options_.heartbeat) return;
  r.wall_ms = clock_.wall_ms();
  std::lock_guard lock(publish_mu_);
  if (auto st = channel_->publish(instance_key(options_.instance_id), encode(r)); !st) {
    static thread_local RateLimiter limiter(std::chrono::seconds(30));
    uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      logger("fleet")->warn("{} ({} similar suppressed)", st.message(), suppressed);
    }
    return;
  }
  last_published_ = content;
  last_heartbeat_ = now;
}

Status Fleet::request(bool paused, const std::string& reason, milliseconds timeout) {
  Target t{paused, reason, clock_.wall_ms(), options_.instance_id, request_id()};
  {
    std::lock_guard lock(publish_mu_);
    if (auto st = channel_->publish(std::string(kTargetKey), encode(t)); !st) return st;
  }
  logger("fleet")->info("{} the fleet{}{}", paused ? "pausing" : "resuming",
                        reason.empty() ? "" : ": ", reason);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    const bool read_back = view_.target() && view_.target()->id == t.id;
    if (!read_back && view_.target() && view_.target()->since_ms > t.since_ms) {
      return Status::error("another pause or resume of the fleet came after this one (by " +
                           view_.target()->by + ")");
    }
    const auto pending = view_.pending(t.id, paused, now, clock_.wall_ms());
    if (read_back && pending.empty()) return Status::ok();
    if (now >= deadline) {
      return Status::error(
          std::string(paused ? "not every instance is quiet" : "not every instance resumed") +
          " within " + std::to_string(timeout.count() / 1000) +
          " s: " + (read_back ? join(pending) : "the fleet topic did not answer") +
          " (it goes on in the background)");
    }
    changed_.wait_for(lock, milliseconds(100));
  }
}

Status Fleet::pause(const std::string& reason, milliseconds timeout) {
  return request(true, reason, timeout);
}

Status Fleet::resume(milliseconds timeout) { return request(false, "", timeout); }

Status Fleet::forget(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (id == options_.instance_id) return Status::error("an instance cannot forget itself");
    if (!view_.instances().contains(id)) return Status::error("no instance " + id + " is known");
    if (view_.live(id, std::chrono::steady_clock::now(), clock_.wall_ms())) {
      return Status::error("instance " + id + " is alive (its heartbeat is recent): stop it first");
    }
  }
  std::lock_guard lock(publish_mu_);
  if (auto st = channel_->publish(instance_key(id), std::nullopt); !st) return st;
  logger("fleet")->warn("instance {} forgotten: what its spool held no longer counts", id);
  return Status::ok();
}

bool Fleet::claimed_elsewhere(const std::string& topic, int32_t partition, int64_t from,
                              int64_t to) const {
  std::lock_guard lock(mu_);
  return view_.claimed_elsewhere(options_.instance_id, topic, partition, from, to);
}

nlohmann::json Fleet::status_json() const {
  using nlohmann::json;
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  const int64_t wall = clock_.wall_ms();
  json instances = json::array();
  for (const auto& [id, r] : view_.instances()) {
    auto spooled = spooled_json(r);
    json partitions = json::array();
    for (const auto& [topic, p] : r.partitions)
      partitions.push_back(topic + "/" + std::to_string(p));
    instances.push_back({{"id", id},
                         {"self", id == options_.instance_id},
                         {"state", r.state},
                         {"live", view_.live(id, now, wall)},
                         {"quiet", r.quiet},
                         {"heartbeat_age_s", view_.age_s(id, now)},
                         {"applied_target", view_.target() && r.applied == view_.target()->id},
                         {"admin", r.admin},
                         {"version", r.version},
                         {"partitions", std::move(partitions)},
                         {"spool_events", r.spool_events},
                         {"spooled", std::move(spooled)}});
  }
  json out = {{"instance_id", options_.instance_id},
              {"caught_up", caught_up_.load()},
              {"instances", std::move(instances)}};
  if (const auto& t = view_.target()) {
    out["target"] = {{"state", t->paused ? "paused" : "running"},
                     {"reason", t->reason},
                     {"since_ms", t->since_ms},
                     {"by", t->by}};
  } else {
    out["target"] = nullptr;
  }
  return out;
}

}  // namespace sluice::fleet
