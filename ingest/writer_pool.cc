#include "ingest/writer_pool.h"

#include <algorithm>
#include <string>
#include <thread>

#include "common/assert.h"

namespace sluice::ingest {

WriterPool::WriterPool(Options options, SinkFactory sinks, const Clock& clock)
    : options_(options),
      sinks_(std::move(sinks)),
      clock_(clock),
      rows_(options.spare_rows, options.spare_rows_capacity) {}

WriterPool::~WriterPool() { stop(true); }

std::unique_ptr<Writer> WriterPool::make_writer(size_t index) {
  return std::make_unique<Writer>(
      index, sinks_(),
      [this](WriteReport&& r) {
        {
          std::lock_guard lock(mu_);
          reports_.push_back(std::move(r));
        }
        cv_.notify_all();
      },
      clock_, options_.limit, options_.lease,
      options_.inline_writers != nullptr ? Execution::kInline : Execution::kThread);
}

void WriterPool::enlist(Writer& writer) {
  if (options_.inline_writers != nullptr) {
    options_.inline_writers->writers_.push_back(&writer);
    ++options_.inline_writers->generation_;
  }
}

void WriterPool::retire(Writer& writer, bool abandon) {
  if (options_.inline_writers != nullptr) {
    std::erase(options_.inline_writers->writers_, &writer);
    ++options_.inline_writers->generation_;
  }
  writer.stop(abandon);
}

void WriterPool::start() {
  for (size_t i = writers_.size(); i < std::max<size_t>(1, options_.writers); ++i) {
    writers_.push_back(make_writer(i));
    enlist(*writers_.back());
  }
}

void WriterPool::stop(bool abandon) {
  for (auto& w : writers_) retire(*w, abandon);
  writers_.clear();
}

void WriterPool::restart() {
  for (size_t i = 0; i < writers_.size(); ++i) {
    retire(*writers_[i], true);
    writers_[i] = make_writer(i);
    writers_[i]->quiesce();
    enlist(*writers_[i]);
  }
}

size_t WriterPool::route(std::string_view topic, int32_t partition) const {
  return (std::hash<std::string_view>{}(topic)*31 + static_cast<size_t>(partition)) %
         writers_.size();
}

void WriterPool::push(storage::Batch batch) {
  in_flight_bytes_ += batch.bytes;
  ++in_flight_;
  const size_t writer = route(batch.topic, batch.partition);
  writers_[writer]->push(std::move(batch));
}

std::vector<WriteReport>& WriterPool::take_reports() {
  taken_.clear();
  {
    std::lock_guard lock(mu_);
    taken_.swap(reports_);
  }
  for (auto& r : taken_) {
    // Every report is of a batch pushed here, reported once (Writer): the accounting is exact.
    SLUICE_ASSERT(in_flight_ > 0 && in_flight_bytes_ >= r.bytes,
                  "a report of {}/{} [{}, {}) ({} bytes) with {} batch(es), {} bytes in flight",
                  r.topic, r.partition, r.base_offset, r.end_offset, r.bytes, in_flight_,
                  in_flight_bytes_);
    in_flight_bytes_ -= r.bytes;
    --in_flight_;
    for (auto& rows : r.spent) rows_.give(std::move(rows));
    r.spent.clear();
  }
  return taken_;
}

bool WriterPool::wait_for_report(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (options_.inline_writers != nullptr) return !reports_.empty();
  return cv_.wait_for(lock, timeout, [this] { return !reports_.empty(); });
}

bool WriterPool::wait_idle(std::chrono::milliseconds timeout) {
  if (options_.inline_writers != nullptr) return idle();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!idle() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return idle();
}

void WriterPool::quiesce() {
  for (auto& w : writers_) w->quiesce();
}

bool WriterPool::quiet() {
  return std::all_of(writers_.begin(), writers_.end(), [](auto& w) { return w->quiet(); });
}

void WriterPool::unquiesce() {
  for (auto& w : writers_) w->unquiesce();
}

void WriterPool::cancel() {
  for (auto& w : writers_) w->cancel();
}

bool WriterPool::idle() {
  return std::all_of(writers_.begin(), writers_.end(), [](auto& w) { return w->idle(); });
}

std::vector<WriterState> WriterPool::states() const {
  std::vector<WriterState> out;
  out.reserve(writers_.size());
  for (const auto& w : writers_) out.push_back(w->state());
  return out;
}

}  // namespace sluice::ingest
