#pragma once
/// `sluice check-config --online`: what the file names, tried — the brokers and topics, the
/// fleet topic's settings, MariaDB as the configured user (the statements Sluice runs, the
/// server settings it depends on), each replica, the spool's disk. One line each, ✔ or ✘ with
/// the fix; exit 0 when nothing failed, 1 otherwise.

#include <string>

#include "common/config.h"

namespace sluice::cli {

int check_online(const Config& config);

}  // namespace sluice::cli
