#pragma once
/// Renders the pipeline's status as the JSON body of GET /v1/status (DESIGN.md §4).

#include <string>

#include "ingest/pipeline.h"

namespace sluice::admin {

/// `now_ms`: wall-clock milliseconds, for the freshness of each table.
std::string status_to_json(const ingest::PipelineStatus& status, int64_t now_ms);

}  // namespace sluice::admin
