#include "testing/sim_writers.h"

#include "testing/fake_database.h"

namespace sluice::testing {

// --- A simulation's writers ------------------------------------------------------------------

bool SimWriters::held(ingest::Writer& w) {
  const auto& db = dynamic_cast<const FakeSession&>(w.sink()).database();
  return w.next_is_statement() && db.holds_writes();
}

void SimWriters::run(size_t max_pieces) {
  const auto now = clock_.now();
  const auto& list = writers_.writers();
  if (writers_.generation() != generation_) {
    generation_ = writers_.generation();
    last_run_.assign(list.size(), now);
  }
  std::vector<size_t> ready;
  for (size_t n = std::uniform_int_distribution<size_t>(0, max_pieces)(rng_); n > 0; --n) {
    ready.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      if (!held(*list[i])) ready.push_back(i);
    }
    if (ready.empty()) break;
    const size_t i = ready[std::uniform_int_distribution<size_t>(0, ready.size() - 1)(rng_)];
    list[i]->run_once();
    last_run_[i] = now;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (now - last_run_[i] < kWake) continue;
    // A thread woken: it does what is due, then sleeps again.
    for (int pieces = 0; pieces < 1000 && !held(*list[i]); ++pieces) {
      if (list[i]->run_once() != ingest::Writer::Ran::kWorked) break;
    }
    last_run_[i] = now;
  }
}

}  // namespace sluice::testing
