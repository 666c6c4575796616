#include "fleet/fleet.h"

#include <algorithm>
#include <random>

#include "common/assert.h"
#include "common/thread_name.h"

namespace sluice::fleet {

using std::chrono::milliseconds;

namespace {

std::string random_id() {
  std::random_device rd;
  const uint64_t v = (uint64_t{rd()} << 32) | rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

/// Foreign incarnations remembered under this instance's id (a restart loop must not grow it).
constexpr size_t kTwinsKept = 16;

}  // namespace

Fleet::Fleet(FleetOptions options, std::unique_ptr<ControlChannel> channel, WriteLease& lease,
             RecordSigner signer, const Clock& clock)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      lease_(lease),
      signer_(std::move(signer)),
      clock_(clock),
      incarnation_(random_id()),
      started_ms_(clock.wall_ms()),
      started_at_(clock.now()),
      view_(options_.instance_id, options_.instance_timeout, options_.limits),
      endpoint_(options_.mariadb) {}

Fleet::~Fleet() { stop(); }

void Fleet::attach(LocalInstance& local) {
  SLUICE_ASSERT(local_ == nullptr && !thread_.joinable(),
                "the fleet's instance is attached once, before it runs");
  local_ = &local;
}

void Fleet::start() {
  SLUICE_ASSERT(local_ != nullptr, "a fleet started with no instance attached");
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    name_this_thread("sluice-fleet");
    while (!stop_.load()) step(milliseconds(100));
  });
}

void Fleet::stop() {
  if (stop_.exchange(true)) return;
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  lease_.revoke();
  if (seq_ == 0) return;  // never ran: nothing was said, nothing to take back
  {
    std::lock_guard lock(mu_);
    if (!conflict_.empty()) return;  // the record under this id is the other process's
  }
  // The last word: stopped, with whatever the spool still holds (its claims stay).
  InstanceRecord r = describe_self();
  r.state = "stopped";
  r.quiet = true;
  r.partitions.clear();
  r.seq = ++seq_;
  r.wall_ms = clock_.wall_ms();
  std::lock_guard lock(publish_mu_);
  const std::string key = instance_key(options_.instance_id);
  if (auto st = channel_->publish(key, signer_.seal(key, encode(r))); !st) {
    logger("fleet")->warn("could not say this instance stopped: {}", st.message());
  }
}

// ---------------------------------------------------------------------------------------------
// The round

void Fleet::step(milliseconds poll) {
  SLUICE_ASSERT(local_ != nullptr, "a fleet stepped with no instance attached");
  read(poll);
  {
    std::lock_guard lock(mu_);
    if (fresh_as_of_ && conflict_.empty()) lease_.renew(*fresh_as_of_ + options_.lease);
  }
  // Said once per change: the lease is what keeps a cut-off instance from writing.
  if (lease_.valid()) {
    ever_valid_ = true;
    if (fenced_logged_) {
      fenced_logged_ = false;
      logger("fleet")->info("the fleet topic is read again: this instance may write again");
    }
  } else if (!fenced_logged_ && (ever_valid_ || clock_.now() - started_at_ >= options_.lease)) {
    fenced_logged_ = true;
    logger("fleet")->error(
        "this instance has not read its own records back from the fleet topic for {} s (its "
        "lease): it writes nothing to MariaDB until it can (state fleet_unreachable)",
        options_.lease.count() / 1000);
  }
  follow_target();
  adopt_local_pause();
  publish_self(false);
}

void Fleet::read(milliseconds timeout) {
  std::vector<ControlRecord> records;
  if (auto st = channel_->poll(timeout, records); !st) {
    uint64_t suppressed = 0;
    if (channel_log_.allow(suppressed)) {
      logger("fleet")->warn("{} ({} similar suppressed)", st.message(), suppressed);
    }
  }
  if (!records.empty()) {
    std::lock_guard lock(mu_);
    const auto now = clock_.now();
    for (const auto& r : records) apply(r, now);
  }
  if (auto warnings = channel_->warnings(); !warnings.empty()) {
    std::lock_guard lock(mu_);
    topic_warnings_ = std::move(warnings);
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

void Fleet::apply(const ControlRecord& r, Clock::time_point now) {
  std::optional<std::string> body;
  if (r.value) {
    auto opened = signer_.open(r.key, *r.value);
    if (!opened) {
      ++rejected_;
      uint64_t suppressed = 0;
      if (rejected_log_.allow(suppressed)) {
        logger("fleet")->error(
            "fleet topic: a record under key '{}' at offset {} is {}: ignored ({} more since "
            "the last such line); only holders of fleet.key_file may write there",
            r.key.substr(0, 64), r.offset, opened.status().message(), suppressed);
      }
      return;
    }
    body = std::move(opened).value();
  } else if (signer_.enabled()) {
    ++rejected_;  // a tombstone cannot be signed
    return;
  }
  bool own = false;
  const std::string own_key = instance_key(options_.instance_id);
  if (r.key == own_key && body) {
    if (auto mine = decode_instance(*body); mine) {
      if (mine->incarnation == incarnation_) {
        own = true;
        if (first_own_offset_ < 0) first_own_offset_ = r.offset;
        // Read back: everything before it in the topic has been read too. The lease runs
        // from when it was sent.
        if (const auto sent = sent_.find(mine->seq); sent != sent_.end()) {
          fresh_as_of_ = std::max(fresh_as_of_.value_or(sent->second), sent->second);
          sent_.erase(sent_.begin(), std::next(sent));
        }
      } else if (!mine->incarnation.empty()) {
        check_twin(*mine, r.offset);
      }
    }
  } else if (r.key == kTargetKey && body) {
    if (auto t = decode_target(*body); t && own_targets_.contains(t->id)) {
      own = true;
      own_target_offsets_[t->id] = r.offset;
    }
  }
  view_.apply(r.key, body, r.offset, own, now);
}

void Fleet::check_twin(const InstanceRecord& other, int64_t offset) {
  // Order by the topic, not by clocks: the process whose records came first is the older.
  if (!twins_.contains(other.incarnation) && twins_.size() >= kTwinsKept) {
    twins_.erase(std::min_element(twins_.begin(), twins_.end(),
                                  [](auto& a, auto& b) { return a.second < b.second; }));
  }
  const int64_t first_seen = twins_.try_emplace(other.incarnation, offset).first->second;
  // Records read before this one's own first record are an earlier run's, unless that process
  // goes on writing after it: then it is alive, and older.
  if (first_own_offset_ < 0 || offset < first_own_offset_ || !conflict_.empty()) return;
  if (first_seen < first_own_offset_) {
    conflict_ = "another instance runs with kafka.instance_id '" + options_.instance_id +
                "' (admin " + (other.admin.empty() ? "unknown" : other.admin) +
                "), started before this one: give each instance of the group its own; this one "
                "stops";
    lease_.revoke();
    return;
  }
  later_twin_seen_ = clock_.now();
  static thread_local RateLimiter limiter(std::chrono::seconds(30));
  uint64_t suppressed = 0;
  if (!limiter.allow(suppressed)) return;
  logger("fleet")->error(
      "another process (admin {}) runs as instance '{}' too, started after this one: it must "
      "stop; give each instance of the group its own kafka.instance_id",
      other.admin.empty() ? "unknown" : other.admin, options_.instance_id);
}

bool Fleet::outlives_a_later_twin() const {
  std::lock_guard lock(mu_);
  return later_twin_seen_ && clock_.now() - *later_twin_seen_ <= options_.instance_timeout;
}

Status Fleet::conflict() const {
  std::lock_guard lock(mu_);
  return conflict_.empty() ? Status::ok()
                          : Status::error(conflict_, ErrorKind::kDuplicateInstance);
}

// ---------------------------------------------------------------------------------------------
// Following the target

void Fleet::follow_target() {
  // Quiet until the fleet's state is known and this instance has read its own record back: a
  // pause written meanwhile is then certainly read before anything is written.
  if (!caught_up_.load() || !lease_.valid()) return;
  if (applying_ && applying_->wait_for(milliseconds(0)) == std::future_status::ready) {
    const Status st = applying_->get();
    applying_.reset();
    std::lock_guard lock(mu_);
    if (st) {
      applied_ = following_;
      apply_backoff_.reset();
    } else {
      // Tried again after a backoff, not at every round (a spool that cannot record a pause
      // would otherwise log ten lines a second).
      if (!apply_backoff_) {
        apply_backoff_.emplace(milliseconds(1000), milliseconds(30000), clock_.seed());
      }
      const auto wait = apply_backoff_->next();
      next_apply_ = clock_.now() + wait;
      logger("fleet")->warn("applying the fleet's target failed: {}; trying again in {} ms",
                            st.message(), wait.count());
      following_.clear();
    }
  }
  if (applying_ || clock_.now() < next_apply_) return;
  std::optional<Target> target;
  std::string endpoint;
  {
    std::lock_guard lock(mu_);
    target = view_.target();
    endpoint = endpoint_;
  }
  const InstanceRecord self = local_->describe();
  if (!initial_done_) {
    initial_done_ = true;
    if (!target) {
      // No fleet-wide target was ever set: the instance's own state holds.
      applying_ = local_->release();
      return;
    }
  }
  if (!target) return;
  if (!target->paused && local_->local_pause()) {
    return;  // a pause of its own comes first: adopt_local_pause() makes it the fleet's
  }
  {
    std::lock_guard lock(mu_);
    if (target->id == following_ || target->id == applied_) return;
    if (!target->paused && !same_server(target->mariadb, target->server, endpoint, self.server)) {
      // An instance never writes to a server that is not the fleet's.
      const std::string why = "the fleet was resumed to write to " + target->mariadb +
                              (target->server.empty() ? "" : " (server " + target->server + ")") +
                              ", this instance is configured for " + endpoint +
                              (self.server.empty() ? "" : " (server " + self.server + ")");
      if (mismatch_ != why) {
        mismatch_ = why;
        logger("fleet")->error(
            "{}: it stays paused until its mariadb section names the same server (edit the "
            "config, then `systemctl reload sluice`)",
            why);
      }
      return;
    }
    mismatch_.clear();
    following_ = target->id;
  }
  if (target->paused) {
    logger("fleet")->info("fleet paused by {} (\"{}\"): pausing", target->by, target->reason);
    applying_ = local_->pause(target->reason, false);
  } else {
    logger("fleet")->info("fleet resumed by {}: resuming", target->by);
    applying_ = local_->resume(target->server);
  }
}

void Fleet::adopt_local_pause() {
  if (!caught_up_.load() || !lease_.valid() || applying_) return;
  const auto reason = local_->local_pause();
  if (!reason) return;
  const auto now = clock_.now();
  {
    std::lock_guard lock(mu_);
    // Adopted already: its target is being read back and applied.
    if (view_.target() && view_.target()->paused && own_targets_.contains(view_.target()->id)) {
      return;
    }
  }
  if (now < next_adopt_) return;
  next_adopt_ = now + std::chrono::seconds(10);
  logger("fleet")->warn("this instance was paused locally (\"{}\"): pausing the fleet", *reason);
  auto request = begin(true, *reason + " (paused locally on " + options_.instance_id + ")",
                       milliseconds(0));
  if (!request) {
    logger("fleet")->warn("the fleet could not adopt the local pause yet: {}",
                          request.status().message());
  }
}

void Fleet::set_endpoint(std::string mariadb) {
  std::lock_guard lock(mu_);
  if (endpoint_ == mariadb) return;
  endpoint_ = std::move(mariadb);
  following_.clear();  // a running target naming this endpoint may apply now
}

// ---------------------------------------------------------------------------------------------
// Publishing

InstanceRecord Fleet::describe_self() {
  InstanceRecord r = local_->describe();
  r.id = options_.instance_id;
  r.version = options_.version;
  r.incarnation = incarnation_;
  r.started_ms = started_ms_;
  r.lease_ms = options_.lease.count();
  r.admin = local_->admin();
  std::lock_guard lock(mu_);
  r.applied = applied_;
  r.mariadb = endpoint_;
  return r;
}

void Fleet::publish_self(bool force) {
  InstanceRecord r = describe_self();
  const std::string content = encode(r);  // seq and wall_ms 0: compares what changed
  const auto now = clock_.now();
  if (!force && content == last_published_ && now - last_heartbeat_ < options_.heartbeat) return;
  r.seq = ++seq_;
  r.wall_ms = clock_.wall_ms();
  {
    std::lock_guard lock(mu_);
    sent_[r.seq] = now;
    // Sent but never read back (lost while the topic was away): not kept for ever.
    while (sent_.size() > 1000) sent_.erase(sent_.begin());
  }
  const std::string key = instance_key(options_.instance_id);
  if (auto st = channel_->send(key, signer_.seal(key, encode(r))); !st) {
    uint64_t suppressed = 0;
    if (channel_log_.allow(suppressed)) {
      logger("fleet")->warn("{} ({} similar suppressed)", st.message(), suppressed);
    }
    return;
  }
  last_published_ = content;
  last_heartbeat_ = now;
}

// ---------------------------------------------------------------------------------------------
// Requests

Result<Fleet::Request> Fleet::begin(bool pause, const std::string& reason, milliseconds timeout) {
  if (!caught_up_.load()) {
    // A target is numbered after the one in the topic; numbered from nothing it would lose to
    // it (FleetView keeps the higher epoch) and the request would fail as if overtaken.
    return Status::error(
        "the fleet topic has not been read yet (the instance is starting, or Kafka is out of "
        "reach)" +
        std::string(pause ? "; `sluice pause --local` pauses this instance at once" : ""));
  }
  Target t;
  t.paused = pause;
  t.reason = reason;
  t.since_ms = clock_.wall_ms();
  t.by = options_.instance_id;
  t.id = random_id();
  const std::string server = pause ? "" : local_->describe().server;
  {
    std::lock_guard lock(mu_);
    if (!pause) {
      // One target server: a resume while live instances would write to different servers
      // would send some of the fleet's rows to the wrong one.
      const auto others = view_.other_servers(endpoint_, server, clock_.now());
      if (!others.empty()) {
        std::string list;
        for (const auto& [id, endpoint] : others) {
          list += (list.empty() ? "" : ", ") + id + " writes to " + endpoint;
        }
        return Status::error("not resumed: the instances do not agree on the MariaDB server (" +
                             list + "; this one, " + options_.instance_id + ", to " + endpoint_ +
                             (server.empty() ? "" : " (server " + server + ")") +
                             "); give every instance the same mariadb endpoint first");
      }
      t.mariadb = endpoint_;
      t.server = server;
    }
    t.epoch = view_.target() ? view_.target()->epoch + 1 : 1;
    own_targets_.insert(t.id);
  }
  {
    std::lock_guard lock(publish_mu_);
    const std::string key(kTargetKey);
    if (auto st = channel_->publish(key, signer_.seal(key, encode(t))); !st) {
      return Status::error(
          st.message() + ": the fleet topic cannot be written" +
          (pause ? "; `sluice pause --local` pauses this instance at once, and the fleet adopts "
                   "the pause when the topic is back (instances that cannot hear the fleet stop "
                   "writing by themselves within their lease)"
                 : ""));
    }
  }
  logger("fleet")->info("{} the fleet{}{}", pause ? "pausing" : "resuming",
                        reason.empty() ? "" : ": ", reason);
  return Request{t.id, pause, clock_.now() + timeout, timeout};
}

std::optional<Status> Fleet::check(const Request& request) const {
  std::lock_guard lock(mu_);
  return check_locked(request);
}

std::optional<Status> Fleet::check_locked(const Request& request) const {
  const auto now = clock_.now();
  const auto read_back = own_target_offsets_.find(request.id);
  const bool current = view_.target() && view_.target()->id == request.id;
  if (read_back != own_target_offsets_.end() && !current) {
    return Status::error("another pause or resume of the fleet came after this one (by " +
                         (view_.target() ? view_.target()->by : std::string("?")) + ")");
  }
  if (current) {
    const auto pending = view_.pending(request.id, request.pause, now);
    if (pending.empty()) return Status::ok();
    if (now < request.deadline) return std::nullopt;
    return Status::error(
        std::string(request.pause ? "not every instance is quiet" : "not every instance resumed") +
        " within " + std::to_string(request.timeout.count() / 1000) +
        " s: " + pending_text(pending, request.pause) + " (it goes on in the background)",
        ErrorKind::kTimeout);
  }
  if (now < request.deadline) return std::nullopt;
  return Status::error(std::string(request.pause ? "pause" : "resume") + " not confirmed within " +
                       std::to_string(request.timeout.count() / 1000) +
                       " s: the fleet topic did not answer (it goes on in the background)",
                       ErrorKind::kTimeout);
}

std::string Fleet::pending_text(const std::vector<std::string>& ids, bool pause) const {
  std::vector<std::string> parts;
  for (const auto& id : ids) {
    const auto it = view_.instances().find(id);
    std::string part = id;
    if (pause && it != view_.instances().end()) {
      if (!view_.heard_since_target(id)) {
        part += " (not heard from since the pause: counted quiet once its lease has run out)";
      } else if (it->second.applied == view_.target()->id) {
        part += " (closing: a transaction or a connection is still open)";
      } else {
        part += " (has not read the pause yet)";
      }
    }
    parts.push_back(std::move(part));
  }
  return join(parts);
}

bool Fleet::wait_caught_up(Clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  while (!caught_up_.load() && clock_.now() < deadline) changed_.wait_for(lock, milliseconds(100));
  return caught_up_.load();
}

Status Fleet::pause(const std::string& reason, milliseconds timeout) {
  wait_caught_up(clock_.now() + timeout);
  auto request = begin(true, reason, timeout);
  if (!request) return request.status();
  return wait(*request);
}

Status Fleet::resume(milliseconds timeout) {
  wait_caught_up(clock_.now() + timeout);
  auto request = begin(false, "", timeout);
  if (!request) return request.status();
  return wait(*request);
}

Status Fleet::wait(const Request& request) const {
  std::unique_lock lock(mu_);
  for (;;) {
    if (auto done = check_locked(request)) return *done;
    changed_.wait_for(lock, milliseconds(100));
  }
}

Status Fleet::pause_locally(const std::string& reason, milliseconds timeout) {
  auto done = local_->pause(reason, true);
  if (done.wait_for(timeout) != std::future_status::ready) {
    return Status::error("the local pause did not complete within " +
                         std::to_string(timeout.count() / 1000) +
                         " s (a transaction may still be running); it goes on in the background",
                         ErrorKind::kTimeout);
  }
  return done.get();
}

Status Fleet::forget(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (auto st = view_.forgettable(id, clock_.now()); !st) return st;
  }
  std::lock_guard lock(publish_mu_);
  const std::string key = instance_key(id);
  const auto value = signer_.enabled()
                         ? std::optional<std::string>(signer_.seal(key, forgotten_value(id)))
                         : std::nullopt;
  if (auto st = channel_->publish(key, value); !st) return st;
  logger("fleet")->warn("instance {} forgotten: what its spool held no longer counts", id);
  return Status::ok();
}

std::optional<int64_t> Fleet::first_claimed(const std::string& topic, int32_t partition,
                                            int64_t from, int64_t to) const {
  std::lock_guard lock(mu_);
  return view_.first_claimed(topic, partition, from, to);
}

nlohmann::json Fleet::status_json() const {
  using nlohmann::json;
  std::lock_guard lock(mu_);
  const auto now = clock_.now();
  json instances = json::array();
  for (const auto& [id, r] : view_.instances()) {
    auto spooled = spooled_json(r);
    json partitions = json::array();
    for (const auto& [topic, p] : r.partitions)
      partitions.push_back(topic + "/" + std::to_string(p));
    const auto silent = view_.silent_for(id, now).value_or(milliseconds(0));
    instances.push_back({{"id", id},
                         {"self", id == options_.instance_id},
                         {"state", r.state},
                         {"live", view_.live(id, now)},
                         {"quiet", r.quiet},
                         {"heartbeat_age_s", static_cast<double>(silent.count()) / 1000.0},
                         {"applied_target", view_.target() && r.applied == view_.target()->id},
                         {"admin", r.admin},
                         {"version", r.version},
                         {"mariadb", r.mariadb},
                         {"lease_ms", r.lease_ms},
                         {"partitions", std::move(partitions)},
                         {"spool_events", r.spool_events},
                         {"spooled", std::move(spooled)}});
  }
  const auto remaining = lease_.remaining();
  json out = {{"instance_id", options_.instance_id},
              {"caught_up", caught_up_.load()},
              {"lease", {{"valid", lease_.valid()},
                         {"lease_ms", options_.lease.count()},
                         {"remaining_ms", remaining == milliseconds::min() ? 0 : remaining.count()}}},
              {"records_rejected", rejected_},
              {"records_replayed", view_.replayed()},
              {"records_unreadable", view_.unreadable() + view_.over_limits()},
              {"signed", signer_.enabled()},
              {"instances", std::move(instances)}};
  if (!mismatch_.empty()) out["not_applied"] = mismatch_;
  if (!topic_warnings_.empty()) out["topic_warnings"] = topic_warnings_;
  if (const auto& t = view_.target()) {
    out["target"] = {{"state", t->paused ? "paused" : "running"},
                     {"reason", t->reason},
                     {"since_ms", t->since_ms},
                     {"by", t->by},
                     {"mariadb", t->mariadb}};
  } else {
    out["target"] = nullptr;
  }
  return out;
}

}  // namespace sluice::fleet
