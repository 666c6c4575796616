// sluice-testbroker: a Kafka-protocol broker for development and tests, on librdkafka's mock
// cluster. Serves loopback only, creates the topics it is given, prints its bootstrap address
// as the first line of stdout (and writes it to --bootstrap-file), and runs until SIGTERM/SIGINT.
//
// The mock cluster keeps only about the last 5 MiB (and 100,000 message sets) of each partition,
// like a Kafka with tiny retention: size loads accordingly (DESIGN.md §4).

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int /*sig*/) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-testbroker: a loopback Kafka broker on librdkafka's mock cluster"};
  std::vector<std::string> topics;
  std::string bootstrap_file;
  int brokers = 1;
  app.add_option("--topic", topics, "Topic to create, as NAME:PARTITIONS (repeatable)");
  app.add_option("--bootstrap-file", bootstrap_file, "Also write the bootstrap address here");
  app.add_option("--brokers", brokers, "Number of mock brokers")->check(CLI::Range(1, 9));
  CLI11_PARSE(app, argc, argv);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) {
    std::cerr << "sluice-testbroker: " << err << "\n";
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (cluster == nullptr) {
    std::cerr << "sluice-testbroker: cannot create the mock cluster\n";
    return 1;
  }
  for (const auto& spec : topics) {
    const auto colon = spec.rfind(':');
    int partitions = 1;
    std::string name = spec;
    if (colon != std::string::npos) {
      name = spec.substr(0, colon);
      try {
        partitions = std::stoi(spec.substr(colon + 1));
      } catch (const std::exception&) {
        partitions = 0;
      }
    }
    if (name.empty() || partitions < 1) {
      std::cerr << "sluice-testbroker: --topic " << spec << ": expected NAME:PARTITIONS\n";
      return 2;
    }
    if (auto e = rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, 1);
        e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "sluice-testbroker: topic " << name << ": " << rd_kafka_err2str(e) << "\n";
      return 1;
    }
  }
  const std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);
  if (!bootstrap_file.empty()) {
    const std::string tmp = bootstrap_file + ".tmp";
    std::ofstream(tmp) << bootstrap << "\n";
    std::rename(tmp.c_str(), bootstrap_file.c_str());
  }
  std::cout << bootstrap << std::endl;

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
