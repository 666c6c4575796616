#include "ingest/replay_file.h"

#include <filesystem>

namespace sluice::ingest {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

Result<std::unique_ptr<JsonLinesInput>> JsonLinesInput::open(const std::string& path,
                                                             std::string topic,
                                                             std::set<int32_t> partitions) {
  std::unique_ptr<JsonLinesInput> input(new JsonLinesInput());
  input->in_.open(path, std::ios::binary);
  if (!input->in_) return Status::error("cannot read " + path);
  input->path_ = path;
  input->topic_filter_ = topic;
  input->default_topic_ =
      topic.empty() ? std::filesystem::path(path).filename().string() : std::move(topic);
  input->partitions_ = std::move(partitions);
  return input;
}

Result<uint64_t> JsonLinesInput::count_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("cannot read " + path);
  uint64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (!blank(line)) ++n;
  }
  return n;
}

Status JsonLinesInput::read(std::chrono::milliseconds /*timeout*/, size_t max,
                            std::vector<SourceMessage>& out) {
  out.clear();
  if (payloads_.size() < max) payloads_.resize(max);
  while (out.size() < max && !done_) {
    if (!std::getline(in_, line_)) {
      if (in_.bad()) return Status::error("reading " + path_ + " failed");
      done_ = true;
      break;
    }
    ++line_number_;
    if (blank(line_)) continue;
    SourceMessage m;
    std::string& payload = payloads_[out.size()];
    simdjson::dom::object obj;
    bool exported = false;
    if (parser_.parse(line_).get(obj) == simdjson::SUCCESS &&
        obj["schema"].error() != simdjson::SUCCESS &&
        (obj["payload"].error() == simdjson::SUCCESS ||
         obj["payload_hex"].error() == simdjson::SUCCESS)) {
      exported = true;
      std::string_view topic;
      int64_t partition = 0, offset = 0, timestamp = -1;
      if (obj["topic"].get(topic) != simdjson::SUCCESS ||
          obj["partition"].get(partition) != simdjson::SUCCESS ||
          obj["offset"].get(offset) != simdjson::SUCCESS) {
        return Status::error(path_ + ":" + std::to_string(line_number_) +
                             ": an exported event needs topic, partition and offset");
      }
      if (obj["timestamp_ms"].get(timestamp) != simdjson::SUCCESS) timestamp = -1;  // none
      if (!topic_filter_.empty() && topic != topic_filter_) continue;
      if (!partitions_.empty() && !partitions_.contains(static_cast<int32_t>(partition))) continue;
      std::string_view text;
      if (obj["payload"].get(text) == simdjson::SUCCESS) {
        payload.assign(text);
      } else if (obj["payload_hex"].get(text) == simdjson::SUCCESS && text.size() % 2 == 0) {
        payload.clear();
        for (size_t i = 0; i < text.size(); i += 2) {
          const int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
          if (hi < 0 || lo < 0) {
            return Status::error(path_ + ":" + std::to_string(line_number_) +
                                 ": payload_hex is not hexadecimal");
          }
          payload.push_back(static_cast<char>(hi * 16 + lo));
        }
      } else {
        return Status::error(path_ + ":" + std::to_string(line_number_) +
                             ": payload must be a string, payload_hex hexadecimal");
      }
      auto name = topic_names_.find(topic);
      if (name == topic_names_.end()) name = topic_names_.emplace(topic).first;
      m.topic = *name;
      m.partition = static_cast<int32_t>(partition);
      m.offset = offset;
      m.timestamp_ms = timestamp;
    }
    if (!exported) {
      // A capsule as it was in Kafka (or something that is not one: it is dead-lettered).
      payload.assign(line_);
      if (!payload.empty() && payload.back() == '\r') payload.pop_back();
      auto name = topic_names_.find(default_topic_);
      if (name == topic_names_.end()) name = topic_names_.emplace(default_topic_).first;
      m.topic = *name;
      m.partition = 0;
      m.offset = static_cast<int64_t>(line_number_);
    }
    m.payload = payload;
    out.push_back(m);
  }
  return Status::ok();
}

}  // namespace sluice::ingest
