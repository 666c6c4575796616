#pragma once
/// The pipeline as the fleet's local instance: what `sluice run` attaches to its fleet (and
/// what the fleet model test attaches to its fleets, so the two agree). Header-only: it joins
/// an ingest type to a fleet type.
///
/// The wiring is two-phase and explicit, not a lambda over a pointer set later: the fleet is
/// built first (the pipeline asks it what other spools hold), the pipeline second, and this
/// adapter is attached to the fleet before the fleet runs.

#include <mutex>
#include <optional>
#include <string>

#include "fleet/fleet.h"
#include "ingest/pipeline.h"
#include "main/instance_record.h"

namespace sluice {

class PipelineInstance final : public fleet::LocalInstance {
 public:
  explicit PipelineInstance(ingest::Pipeline& pipeline) : pipeline_(pipeline) {}

  fleet::InstanceRecord describe() override { return describe_instance(pipeline_.status()); }
  std::future<Status> pause(const std::string& reason, bool local) override {
    return pipeline_.request_pause(reason, local);
  }
  std::future<Status> resume(const std::string& server) override {
    return pipeline_.request_resume(server);
  }
  std::future<Status> release() override { return pipeline_.request_release(); }
  std::string admin() override {
    std::lock_guard lock(mu_);
    return admin_;
  }
  std::optional<std::string> local_pause() override {
    const auto s = pipeline_.status();
    if (s.state == ingest::ServiceState::kPaused && s.pause_local) return s.pause_reason;
    return std::nullopt;
  }

  /// The admin endpoint's address, once it listens (any thread).
  void set_admin(std::string address) {
    std::lock_guard lock(mu_);
    admin_ = std::move(address);
  }

 private:
  ingest::Pipeline& pipeline_;
  std::mutex mu_;
  std::string admin_;  ///< guarded by mu_
};

}  // namespace sluice
