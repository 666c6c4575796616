#include "cli/spool_command.h"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "admin/status_json.h"
#include "common/config.h"
#include "storage/rocksdb_spool.h"

namespace sluice::cli {
namespace {

using Selection = std::vector<ingest::PipelineStatus::SpoolPartition>;

std::string utc(int64_t ms) {
  if (ms < 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Opens the spool of a stopped service; nullptr after saying why.
std::unique_ptr<storage::Spool> open_offline(const SpoolOptions& o) {
  std::string path = o.path;
  if (path.empty()) {
    auto config = load_config(o.config_path);
    if (!config) {
      std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
      return nullptr;
    }
    path = config->spool.path;
  }
  // Never create one: a tool pointed at the wrong folder must say so.
  if (!std::filesystem::exists(path + "/CURRENT")) {
    std::cerr << "sluice spool: no spool at " << path << "\n";
    return nullptr;
  }
  auto spool = storage::RocksDbSpool::open(path);
  if (!spool) {
    std::cerr << "sluice spool: " << spool.status().message() << "\n";
    if (spool.status().message().find("lock") != std::string::npos) {
      std::cerr << "sluice spool: a running sluice holds it: stop the service first (`sluice "
                   "spool inspect --admin URL` reads a running one)\n";
    }
    return nullptr;
  }
  return std::move(spool).value();
}

/// The spool's partitions with the newest event time of each, filtered by topic/partition.
Selection select(const storage::Spool& spool, const SpoolOptions& o) {
  Selection out;
  storage::SpoolChunk chunk;
  for (const auto& [key, range] : spool.partitions()) {
    if (!o.topic.empty() && key.first != o.topic) continue;
    if (o.partition >= 0 && key.second != o.partition) continue;
    int64_t newest = -1;
    if (spool.read(key.first, key.second, range.last_offset, 1, chunk) && !chunk.events.empty()) {
      newest = chunk.events.front().timestamp_ms;
    }
    out.push_back({key.first, key.second, range, newest});
  }
  return out;
}

void print_inspect(const nlohmann::json& j) {
  std::cout << "spool: " << j["events"].get<uint64_t>() << " events, " << j["bytes"].get<uint64_t>()
            << " bytes";
  if (j["pause"].is_object()) {
    std::cout << "; paused by an operator: \"" << j["pause"]["reason"].get<std::string>()
              << "\" since " << utc(j["pause"]["since_ms"].get<int64_t>());
  }
  std::cout << "\n";
  if (j["partitions"].empty()) return;
  std::printf("\n  %-32s %12s %12s %10s %12s  %-20s  %-20s\n", "topic/partition", "first", "last",
              "events", "bytes", "oldest event", "newest event");
  for (const auto& p : j["partitions"]) {
    const std::string name =
        p["topic"].get<std::string>() + "/" + std::to_string(p["partition"].get<int>());
    std::printf("  %-32s %12lld %12lld %10llu %12llu  %-20s  %-20s\n", name.c_str(),
                static_cast<long long>(p["first_offset"].get<int64_t>()),
                static_cast<long long>(p["last_offset"].get<int64_t>()),
                static_cast<unsigned long long>(p["events"].get<uint64_t>()),
                static_cast<unsigned long long>(p["bytes"].get<uint64_t>()),
                utc(p["oldest_timestamp_ms"].get<int64_t>()).c_str(),
                utc(p["newest_timestamp_ms"].get<int64_t>()).c_str());
  }
}

int inspect(const SpoolOptions& o) {
  std::string body;
  if (o.path.empty() && o.config_path.empty()) {
    if (const int code = admin_call(o.admin, "GET", "/v1/spool", "", body)) return code;
  } else {
    auto spool = open_offline(o);
    if (!spool) return 1;
    body = admin::spool_to_json(select(*spool, o), spool->pause());
  }
  if (o.admin.json) {
    std::cout << body << "\n";
  } else {
    print_inspect(nlohmann::json::parse(body));
  }
  return 0;
}

/// One JSON line per event; a payload that is not UTF-8 goes as hex so no byte is lost.
int export_events(const SpoolOptions& o) {
  auto spool = open_offline(o);
  if (!spool) return 1;
  std::ofstream file;
  if (o.output != "-") {
    file.open(o.output, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "sluice spool: cannot write " << o.output << "\n";
      return 1;
    }
  }
  std::ostream& out = o.output == "-" ? std::cout : file;
  storage::SpoolChunk chunk;
  uint64_t exported = 0;
  const Selection selection = select(*spool, o);
  for (const auto& p : selection) {
    for (int64_t from = p.range.first_offset; from <= p.range.last_offset;) {
      if (auto st = spool->read(p.topic, p.partition, from, 1000, chunk); !st) {
        std::cerr << "sluice spool: " << st.message() << "\n";
        return 1;
      }
      if (chunk.events.empty()) break;
      for (const auto& e : chunk.events) {
        nlohmann::json line = {{"topic", p.topic},
                               {"partition", p.partition},
                               {"offset", e.offset},
                               {"timestamp_ms", e.timestamp_ms},
                               {"payload", std::string(e.payload)}};
        std::string text;
        try {
          text = line.dump();
        } catch (const nlohmann::json::type_error&) {  // not UTF-8
          static constexpr char kHex[] = "0123456789abcdef";
          std::string hex;
          for (const unsigned char c : e.payload) {
            hex += kHex[c >> 4];
            hex += kHex[c & 15];
          }
          line.erase("payload");
          line["payload_hex"] = hex;
          text = line.dump();
        }
        out << text << '\n';
        ++exported;
      }
      from = chunk.events.back().offset + 1;
    }
  }
  out.flush();
  std::cerr << "sluice spool: exported " << exported << " events from " << selection.size()
            << " partition(s)\n";
  return out ? 0 : 1;
}

/// The path of the spool of a stopped service (--path, or --config's spool.path); "" after
/// saying why.
std::string offline_path(const SpoolOptions& o) {
  if (!o.path.empty()) return o.path;
  auto config = load_config(o.config_path);
  if (!config) {
    std::cerr << "sluice: invalid configuration: " << config.status().message() << "\n";
    return "";
  }
  return config->spool.path;
}

int discard_corrupt(const SpoolOptions& o) {
  const std::string path = offline_path(o);
  if (path.empty()) return 2;
  if (!std::filesystem::exists(path + "/CURRENT")) {
    std::cerr << "sluice spool: no spool at " << path << "\n";
    return 1;
  }
  auto blocks = storage::RocksDbSpool::find_corrupt_blocks(path);
  if (!blocks) {
    std::cerr << "sluice spool: " << blocks.status().message() << "\n";
    return 1;
  }
  if (blocks->empty()) {
    std::cout << "no corrupt block in the spool at " << path << "; nothing removed\n";
    return 0;
  }
  const std::string aside = path + ".corrupt";
  std::cout << (o.confirm ? "removing" : "would remove") << " " << blocks->size()
            << " corrupt block(s), each copied to " << aside << "/ first:\n";
  for (const auto& b : *blocks) {
    std::cout << "  " << b.topic << "/" << b.partition << " from offset " << b.first_offset
              << (b.next_offset >= 0 ? " to " + std::to_string(b.next_offset - 1) : "") << " ("
              << b.bytes << " bytes): " << b.why << "\n";
  }
  if (!o.confirm) {
    std::cout << "nothing removed. Once removed, the service reads those offsets again from "
                 "Kafka; what Kafka no longer has is recorded as a kafka_gap dead letter. Run "
                 "again with --confirm to remove them.\n";
    return 0;
  }
  std::error_code ec;
  std::filesystem::create_directories(aside, ec);
  if (ec) {
    std::cerr << "sluice spool: cannot create " << aside << ": " << ec.message() << "\n";
    return 1;
  }
  if (auto st = storage::RocksDbSpool::remove_blocks(path, *blocks, aside); !st) {
    std::cerr << "sluice spool: " << st.message() << "\n";
    return 1;
  }
  std::cout << "removed; copies in " << aside << "/\n";
  return 0;
}

int discard(const SpoolOptions& o) {
  if (o.corrupt) return discard_corrupt(o);
  if (!o.all && o.topic.empty()) {
    std::cerr << "sluice spool discard: say what to delete: --topic T [--partition P], or "
                 "--all\n";
    return 2;
  }
  auto spool = open_offline(o);
  if (!spool) return 1;
  struct Doomed {
    std::string topic;
    int32_t partition;
    int64_t first, last;
    uint64_t events;
  };
  std::vector<Doomed> doomed;
  uint64_t total = 0;
  for (const auto& p : select(*spool, o)) {
    Doomed d{p.topic, p.partition, p.range.first_offset, p.range.last_offset, p.range.events};
    total += d.events;
    doomed.push_back(d);
  }
  if (doomed.empty()) {
    std::cout << "nothing in the spool matches; nothing deleted\n";
    return 0;
  }
  std::cout << (o.confirm ? "deleting" : "would delete") << " " << total
            << " spooled event(s) that MariaDB does not have:\n";
  for (const auto& d : doomed) {
    std::cout << "  " << d.topic << "/" << d.partition << " offsets " << d.first << ".." << d.last
              << ": " << d.events << " event(s)\n";
  }
  if (!o.confirm) {
    std::cout << "nothing deleted. These events exist nowhere else once Kafka's retention has "
                 "passed; `sluice spool export` keeps a copy. Run again with --confirm to "
                 "delete them.\n";
    return 0;
  }
  for (const auto& d : doomed) {
    if (auto st = spool->release(d.topic, d.partition, d.last + 1); !st) {
      std::cerr << "sluice spool: " << st.message() << "\n";
      return 1;
    }
  }
  std::cout << "deleted; the spool now holds " << spool->totals().events << " event(s)\n";
  return 0;
}

}  // namespace

int spool_command(const SpoolOptions& o) {
  if (o.action == "inspect") return inspect(o);
  if ((o.action == "export" || o.action == "discard") && o.path.empty() && o.config_path.empty()) {
    std::cerr << "sluice spool " << o.action
              << " works on a stopped service's spool: give --path DIR or --config FILE\n";
    return 2;
  }
  if (o.action == "export") return export_events(o);
  if (o.action == "discard") return discard(o);
  std::cerr << "sluice spool: unknown action " << o.action << "\n";
  return 2;
}

}  // namespace sluice::cli
