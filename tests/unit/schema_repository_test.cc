// SchemaRepository against a small HTTP server on loopback, run by the test on a thread of its
// own: what counts as an answer and what as a failure, the size limit, the backoff, asking
// never blocking, and a stop that does not wait for a slow server.

#include "ingest/schema_repository.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "testing/harness.h"

namespace sluice::ingest {
namespace {

using namespace std::chrono_literals;

/// Answers each request with the status and body set for its path (404 when none), one
/// connection at a time; a path may be made to stall for a while before it answers.
class TinyHttpServer {
 public:
  TinyHttpServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(::listen(fd_, 16), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set(const std::string& path, int status, std::string body) {
    std::lock_guard lock(mu_);
    routes_[path] = {status, std::move(body)};
  }
  void stall(const std::string& path, std::chrono::milliseconds how_long) {
    std::lock_guard lock(mu_);
    stalls_[path] = how_long;
  }
  int requests(const std::string& path) {
    std::lock_guard lock(mu_);
    return counts_[path];
  }

 private:
  void serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      const auto sp = request.find(' ');
      const std::string path = request.substr(sp + 1, request.find(' ', sp + 1) - sp - 1);
      int status = 404;
      std::string body = "not here";
      std::chrono::milliseconds stall{0};
      {
        std::lock_guard lock(mu_);
        ++counts_[path];
        if (const auto it = routes_.find(path); it != routes_.end()) {
          status = it->second.first;
          body = it->second.second;
        }
        if (const auto it = stalls_.find(path); it != stalls_.end()) stall = it->second;
      }
      for (auto waited = 0ms; waited < stall && !stop_; waited += 10ms) {
        std::this_thread::sleep_for(10ms);
      }
      const std::string response = "HTTP/1.1 " + std::to_string(status) +
                                   " X\r\nContent-Length: " + std::to_string(body.size()) +
                                   "\r\nConnection: close\r\n\r\n" + body;
      (void)!::write(c, response.data(), response.size());
      ::close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, std::pair<int, std::string>> routes_;
  std::map<std::string, std::chrono::milliseconds> stalls_;
  std::map<std::string, int> counts_;
  std::thread thread_;
};

/// Asks until an answer comes (or `timeout` of real time passes).
SchemaSource::Answer ask_until_answered(SchemaRepository& repo, const std::string& name,
                                        int64_t revision, std::chrono::seconds timeout = 10s) {
  SchemaSource::Answer a;
  testing::wait_until(
      [&] {
        a = repo.ask(name, revision);
        return a.state != SchemaSource::State::kPending;
      },
      timeout);
  return a;
}

TEST(SchemaRepositoryFetchTest, AFoundRevisionIsHandedOutOnceAndADefinite4xxIsAnAnswer) {
  TinyHttpServer server;
  server.set("/Good/1.json", 200, R"({"properties": {}})");
  server.set("/Gone/1.json", 410, "");
  server.set("/Bad/1.json", 400, "");
  SchemaRepository repo({.url = server.url()});
  EXPECT_EQ(repo.ask("Good", 1).state, SchemaSource::State::kPending) << "never in the call";
  auto good = ask_until_answered(repo, "Good", 1);
  EXPECT_EQ(good.state, SchemaSource::State::kFound);
  EXPECT_EQ(good.text, R"({"properties": {}})");
  for (const char* name : {"Missing", "Gone", "Bad"}) {
    const auto a = ask_until_answered(repo, name, 1);
    EXPECT_EQ(a.state, SchemaSource::State::kNotFound) << name;
    EXPECT_EQ(a.detail.rfind("HTTP 4", 0), 0u) << a.detail;
  }
  const auto stats = repo.stats();
  EXPECT_EQ(stats.fetched, 1u);
  EXPECT_EQ(stats.not_found, 3u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(stats.waiting, 0u);
  EXPECT_EQ(repo.completed(), 4u);
}

TEST(SchemaRepositoryFetchTest, RefusalsAndServerErrorsAreFailuresRetriedWithBackoffNeverAnswers) {
  TinyHttpServer server;
  server.set("/Locked/1.json", 403, "");
  server.set("/Broken/1.json", 503, "");
  ManualClock clock;
  SchemaRepository repo({.url = server.url()}, clock);
  for (const char* name : {"Locked", "Broken"}) {
    (void)repo.ask(name, 1);
    ASSERT_TRUE(testing::wait_until([&] { return server.requests(std::string("/") + name +
                                                                 "/1.json") == 1; },
                                    10s));
  }
  ASSERT_TRUE(testing::wait_until([&] { return repo.completed() == 2; }, 10s));
  auto a = repo.ask("Locked", 1);
  EXPECT_EQ(a.state, SchemaSource::State::kPending);
  EXPECT_EQ(a.detail, "HTTP 403");
  EXPECT_EQ(a.retry_at, clock.now() + 1s) << "the first retry a second later";
  EXPECT_FALSE(repo.stats().reachable);
  EXPECT_EQ(repo.stats().last_error.find(server.url()), 0u) << repo.stats().last_error;
  // Asked again before its time: no new fetch.
  (void)repo.ask("Locked", 1);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server.requests("/Locked/1.json"), 1);
  // Its time come, the repository answers now.
  server.set("/Locked/1.json", 200, "{}");
  clock.advance(1s);
  EXPECT_EQ(ask_until_answered(repo, "Locked", 1).state, SchemaSource::State::kFound);
  EXPECT_TRUE(repo.stats().reachable);
  // A second failure in a row waits twice as long.
  (void)repo.ask("Broken", 1);  // the first retry is due: asked again, and fails again
  ASSERT_TRUE(testing::wait_until([&] { return server.requests("/Broken/1.json") == 2; }, 10s));
  ASSERT_TRUE(testing::wait_until([&] { return repo.completed() == 4; }, 10s));
  EXPECT_EQ(repo.ask("Broken", 1).retry_at, clock.now() + 2s);
}

TEST(SchemaRepositoryFetchTest, AnAnswerLargerThanTheLimitIsDefiniteAndNothingIsListening) {
  TinyHttpServer server;
  server.set("/Huge/1.json", 200, std::string(5000, ' '));
  SchemaRepository repo({.url = server.url(), .max_bytes = 4096});
  const auto huge = ask_until_answered(repo, "Huge", 1);
  EXPECT_EQ(huge.state, SchemaSource::State::kNotFound);
  EXPECT_EQ(huge.detail, "its answer is larger than 4096 bytes");
  // Nothing listens: a failure, asked again later.
  SchemaRepository nowhere({.url = "http://127.0.0.1:1", .timeout = 2000ms});
  (void)nowhere.ask("Any", 1);
  ASSERT_TRUE(testing::wait_until([&] { return nowhere.completed() == 1; }, 10s));
  const auto a = nowhere.ask("Any", 1);
  EXPECT_EQ(a.state, SchemaSource::State::kPending);
  EXPECT_FALSE(a.detail.empty());
}

TEST(SchemaRepositoryFetchTest, StoppingDoesNotWaitForASlowServer) {
  TinyHttpServer server;
  server.set("/Slow/1.json", 200, "{}");
  server.stall("/Slow/1.json", 20s);
  const auto started = std::chrono::steady_clock::now();
  {
    SchemaRepository repo({.url = server.url(), .timeout = 60'000ms});
    (void)repo.ask("Slow", 1);
    ASSERT_TRUE(testing::wait_until([&] { return server.requests("/Slow/1.json") == 1; }, 10s));
  }  // the fetch under way is aborted
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST(SchemaRepositoryFetchTest, RevisionsNobodyAsksForAgainAreForgotten) {
  // An event held for a revision, then revoked or dead-lettered elsewhere, never asks again:
  // its entry must not stay (1,024 such would lock every new revision out).
  TinyHttpServer server;
  server.set("/Broken/1.json", 503, "");
  server.set("/Good/1.json", 200, "{}");
  ManualClock clock;
  SchemaRepository repo({.url = server.url()}, clock);
  (void)repo.ask("Broken", 1);
  ASSERT_TRUE(testing::wait_until([&] { return repo.completed() == 1; }, 10s));
  EXPECT_EQ(repo.stats().waiting, 1u);
  clock.advance(SchemaRepository::kForgetAfter + 1min);
  (void)repo.ask("Good", 1);  // a new revision looks for idle ones
  ASSERT_TRUE(testing::wait_until([&] { return repo.completed() == 2; }, 10s));
  EXPECT_EQ(repo.stats().waiting, 0u) << "Broken forgotten, Good answered";
  EXPECT_EQ(repo.ask("Good", 1).state, SchemaSource::State::kFound);
}

}  // namespace
}  // namespace sluice::ingest
