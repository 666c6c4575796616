#pragma once
/// Renders the pipeline's status as the JSON body of GET /v1/status (DESIGN.md §4).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "admin/replica_freshness.h"
#include "ingest/pipeline_status.h"

namespace sluice::admin {

/// `now_ms`: wall-clock milliseconds, for the freshness of each table; `replicas`: the latest
/// freshness check of each configured replica (a "replicas" list, present when any).
/// `fleet`: every instance of the group (fleet::Fleet::status_json), present when not null.
std::string status_to_json(const ingest::PipelineStatus& status, int64_t now_ms,
                           const std::vector<ReplicaFreshness::Replica>& replicas = {},
                           const nlohmann::json& fleet = nullptr);

/// The body of GET /v1/spool and of `sluice spool inspect --json`: per partition the offset
/// range, events, bytes, oldest and newest event time; the totals; the operator's pause.
std::string spool_to_json(const std::vector<ingest::PipelineStatus::SpoolPartition>& partitions,
                          const std::optional<storage::PauseRecord>& pause);

}  // namespace sluice::admin
