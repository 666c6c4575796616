// sluice-eventgen: produces sample EventLogging capsules to Kafka, for the local demo and for
// load tests. Events are NavigationTiming, SaveTiming, EditConflict and TestSchema capsules as
// the test suite builds them (optional fields present or not, unicode); --bad-every mixes in
// events of every dead-letter class.

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <thread>

#include "testing/harness.h"

int main(int argc, char** argv) {
  CLI::App app{"sluice-eventgen: produce sample EventLogging capsules to Kafka"};
  std::string brokers;
  std::vector<std::string> topics;
  uint64_t count = 1000;
  double rate = 0;
  uint64_t bad_every = 0;
  int partitions = 1;
  std::string compression = "none";
  // Part of every uuid, so separate runs never produce the same uuid.
  uint32_t run = static_cast<uint32_t>(std::chrono::system_clock::now().time_since_epoch().count() /
                                       1000 % 0xffffff);
  app.add_option("--brokers", brokers, "Bootstrap servers")->required();
  app.add_option("--topic", topics,
                 "Topic to produce to (repeatable); the schema follows the "
                 "name (…NavigationTiming, …SaveTiming, …EditConflict), "
                 "otherwise schemas rotate")
      ->required();
  app.add_option("--partitions", partitions, "Partitions of each topic to spread over");
  app.add_option("--count", count, "Events per topic");
  app.add_option("--rate", rate, "Events per second in all (0: as fast as possible)");
  app.add_option("--bad-every", bad_every, "Make every N-th event a bad one (0: none)");
  app.add_option("--compression", compression, "none, gzip, snappy, lz4 or zstd");
  app.add_option("--run", run, "Run id encoded in uuids (default: from the clock)");
  CLI11_PARSE(app, argc, argv);

  using sluice::testing::EventFactory;
  sluice::testing::Producer producer(brokers, compression);
  const auto started = std::chrono::steady_clock::now();
  uint64_t produced = 0, bad_class = 0;
  for (uint64_t i = 0; i < count; ++i) {
    for (size_t t = 0; t < topics.size(); ++t) {
      const auto& topic = topics[t];
      const int32_t partition = static_cast<int32_t>(i % static_cast<uint64_t>(partitions));
      const uint64_t seq = i / static_cast<uint64_t>(partitions);
      int which = static_cast<int>(i % 4);
      if (topic.ends_with("NavigationTiming")) which = 0;
      if (topic.ends_with("SaveTiming")) which = 1;
      if (topic.ends_with("EditConflict")) which = 2;
      if (topic.ends_with("TestSchema")) which = 3;
      std::string payload;
      if (bad_every > 0 && i % bad_every == bad_every - 1) {
        std::string reason;
        payload = EventFactory::bad(static_cast<int>(bad_class++), i, reason);
      } else {
        payload = EventFactory::good(which, (run << 8) | static_cast<uint32_t>(t),
                                     static_cast<uint32_t>(partition), seq);
      }
      producer.produce(topic, partition, payload);
      ++produced;
      if (rate > 0) {
        const auto due =
            started + std::chrono::duration<double>(static_cast<double>(produced) / rate);
        std::this_thread::sleep_until(due);
      }
    }
  }
  producer.flush();
  std::cerr << "sluice-eventgen: produced " << produced << " events\n";
  return 0;
}
