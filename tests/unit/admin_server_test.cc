#include "admin/admin_server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "admin/admin_client.h"
#include "admin/admin_router.h"
#include "cli/admin_call.h"
#include "testing/harness.h"

namespace sluice::admin {
namespace {

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s =
        AdminServer::start("127.0.0.1:0", "s3cret-token",
                           {.status_json = [] { return std::string(R"({"state":"running"})"); },
                            .metrics_text = [] { return std::string("sluice_up 1\n"); }});
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    server_ = std::move(s).value();
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  HttpReply call(const std::string& method, const std::string& path, const std::string& token,
                 const std::string& body = "") {
    auto r = http_request(url_, method, path, body, token);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? r.value() : HttpReply{};
  }
  std::unique_ptr<AdminServer> server_;
  std::string url_;
};

TEST_F(AdminServerTest, HealthAndMetricsNeedNoToken) {
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
  auto m = call("GET", "/metrics", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, "sluice_up 1\n");
}

TEST_F(AdminServerTest, V1RequestsNeedTheBearerToken) {
  EXPECT_EQ(call("GET", "/v1/status", "").status, 401);
  auto wrong = call("GET", "/v1/status", "s3cret-tokem");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/nonexistent", "").status, 401);  // auth before routing
  auto ok = call("GET", "/v1/status", "s3cret-token");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "{\"state\":\"running\"}\n");
  // Without a spool handler (not this process's job), a clear 501 rather than a crash.
  auto spool = call("GET", "/v1/spool", "s3cret-token");
  EXPECT_EQ(spool.status, 501);
  EXPECT_NE(spool.body.find("\"error\""), std::string::npos);
}

TEST_F(AdminServerTest, UnknownPathWrongMethodAndMalformedBodyGetJsonErrors) {
  auto missing = call("GET", "/nope", "s3cret-token");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/nope", "s3cret-token").status, 404);
  auto wrong = call("POST", "/v1/status", "s3cret-token");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(call("DELETE", "/healthz", "").status, 405);
  EXPECT_EQ(call("GET", "/v1/pause", "s3cret-token").status, 405);
  auto bad = call("POST", "/v1/pause", "s3cret-token", "{not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("JSON object"), std::string::npos);
  EXPECT_EQ(call("POST", "/v1/pause", "s3cret-token", R"({"reason": 5})").status, 400);
  // This server was given no pause handler: it says so rather than pretend.
  EXPECT_EQ(call("POST", "/v1/pause", "s3cret-token", R"({"reason": "maintenance"})").status, 501);
}

TEST_F(AdminServerTest, OversizedAndGarbageRequestsAreRefusedAndServingGoesOn) {
  const int port = server_->port();
  const auto huge =
      testing::raw_exchange(port,
                            "POST /v1/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                            "s3cret-token\r\nContent-Length: 10000000000\r\n\r\n{",
                            false);
  EXPECT_NE(huge.find("413"), std::string::npos) << huge;
  const auto headers = testing::raw_exchange(
      port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_NE(headers.find("431"), std::string::npos) << headers.substr(0, 200);
  const auto garbage = testing::raw_exchange(port, "\x16\x03\x01\x02\x00 not http at all\r\n\r\n");
  EXPECT_NE(garbage.find("400"), std::string::npos) << garbage;

  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([port, t] {
      for (int i = 0; i < 75; ++i) {
        std::string junk(static_cast<size_t>(1 + (i * 37 + t) % 3000), static_cast<char>(i % 256));
        (void)testing::raw_exchange(port, junk);
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(call("GET", "/v1/status", "s3cret-token").status, 200);
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  const auto out =
      testing::raw_exchange(server_->port(),
                            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t count = 0;
  for (size_t pos = 0; (pos = out.find("HTTP/1.1 200", pos)) != std::string::npos; ++pos) ++count;
  EXPECT_EQ(count, 2u) << out;
}

TEST(AdminServerCommands, PauseWaitsOffTheIoThreadIsBoundedAndStopWaitsForIt) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> calls{0};
  AdminHandlers handlers{[] { return std::string(R"({"state":"running"})"); },
                         [] { return std::string(); }};
  handlers.pause = [&](const std::string&, bool) -> Result<std::string> {
    ++calls;
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
    return std::string(R"({"state":"paused"})");
  };
  handlers.resume = [] { return Result<std::string>(std::string(R"({"state":"running"})")); };
  auto started = AdminServer::start("127.0.0.1:0", "", std::move(handlers));
  ASSERT_TRUE(started.is_ok());
  auto server = std::move(started).value();
  const std::string url = "http://127.0.0.1:" + std::to_string(server->port());

  // Eight operators pause at once while the pipeline is slow to get quiet.
  std::vector<std::thread> clients;
  std::mutex results_mu;
  std::vector<int> codes;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      auto r = http_request(url, "POST", "/v1/pause", "", "", 20'000);
      std::lock_guard lock(results_mu);
      codes.push_back(r.is_ok() ? r->status : -1);
    });
  }
  // Refusals come at once; the admitted ones wait. /healthz is served meanwhile.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        std::lock_guard lock(results_mu);
        return codes.size() >= 4;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(http_request(url, "GET", "/healthz", "", "")->status, 200);
  EXPECT_EQ(calls.load(), 1) << "pause requests run one at a time";
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& c : clients) c.join();
  EXPECT_EQ(std::count(codes.begin(), codes.end(), 200), 4);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), 503), 4);
  server->stop();
}

TEST(AdminTokens, CompareInConstantTimeAndReadFromFile) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(read_token_file("/nonexistent/token").is_ok());
}

TEST(AdminClient, UnreachableEndpointIsAClearError) {
  auto r = http_request("http://127.0.0.1:1", "GET", "/v1/status", "", "", 2000);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("cannot reach the admin endpoint"), std::string::npos);
}

TEST(AdminRouter, RequestsAreRoutedWithoutASocket) {
  const AdminHandlers handlers{
      .status_json = [] { return std::string("{}"); },
      .metrics_text = [] { return std::string("m 1\n"); },
      .pause = [](const std::string& r, bool) -> Result<std::string> { return r; },
      .resume = []() -> Result<std::string> { return std::string(); }};
  auto route = [&](const std::string& bytes) { return route_bytes(bytes, "tok", handlers); };
  const auto pause = route(
      "POST /v1/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 18\r\n"
      "\r\n{\"reason\": \"db1\"}\n");
  EXPECT_EQ(pause.kind, Routed::Kind::kPause);
  EXPECT_EQ(pause.reason, "db1");
  EXPECT_EQ(route("POST /v1/resume HTTP/1.1\r\nAuthorization: Bearer tok\r\n\r\n").kind,
            Routed::Kind::kResume);
  EXPECT_EQ(route("POST /v1/resume HTTP/1.1\r\n\r\n").reply.status, 401u);
  EXPECT_EQ(route("GET /metrics HTTP/1.1\r\n\r\n").reply.body, "m 1\n");
  const auto wrong = route("PUT /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(wrong.reply.status, 405u);
  EXPECT_EQ(wrong.reply.allow, "GET");
  EXPECT_EQ(route("GET /v1/status HTTP/1.1\r\nAuthorization: Bearer tok\r\n\r\n").reply.status,
            200u);
  EXPECT_EQ(route("GET /v1/status HTTP/1.1\r\n").kind, Routed::Kind::kNone);  // incomplete
  EXPECT_EQ(route("").kind, Routed::Kind::kNone);  // found by admin_fuzzer: nothing at all
  EXPECT_EQ(route("\x16\x03\x01 hello\r\n\r\n").reply.status, 400u);
  EXPECT_EQ(route("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n").reply.status, 431u);
  EXPECT_EQ(route("POST /v1/pause HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").reply.status,
            413u);
  // A path that is not UTF-8 is echoed in a JSON error that stays JSON.
  const auto odd = route("GET /\xff\xfe HTTP/1.1\r\n\r\n");
  EXPECT_EQ(odd.reply.status, 404u);
  EXPECT_NE(odd.reply.body.find("\"error\""), std::string::npos);
}

TEST(AdminServerDeadlines, APauseThatWaitsPastTheReadDeadlineStillGetsItsWholeAnswer) {
  // The pause waits three read deadlines for the pipeline, and its answer is far larger than a
  // socket buffer: written under an expired read deadline, it would be cut off.
  const std::string big(6 << 20, 'p');
  auto s = AdminServer::start(
      "127.0.0.1:0", "",
      {.status_json = [] { return std::string("{}"); },
       .metrics_text = [] { return std::string(); },
       .pause = [&](const std::string&, bool) -> Result<std::string> {
         std::this_thread::sleep_for(std::chrono::milliseconds(900));
         return big;
       }},
      {.read = std::chrono::milliseconds(300), .write = std::chrono::seconds(20)});
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  auto reply = http_request("http://127.0.0.1:" + std::to_string(s.value()->port()), "POST",
                            "/v1/pause", "", "", 30'000);
  ASSERT_TRUE(reply.is_ok()) << reply.status().message();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body.size(), big.size() + 1);
}

TEST(AdminUrlTest, HttpHttpsIpv6AndTheFormOfAdminListenAreUnderstoodAndTheRestRefused) {
  auto u = parse_admin_url("http://127.0.0.1:8470");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8470");
  u = parse_admin_url("https://sluice.example.org:443/");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "sluice.example.org");
  u = parse_admin_url("http://[::1]:8470");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->host, "::1");
  u = parse_admin_url("[::1]:8470");  // admin.listen's own form
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->host, "::1");
  u = parse_admin_url("0.0.0.0:8470");  // listening everywhere: ask this host's loopback
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->host, "127.0.0.1");
  u = parse_admin_url("http://[::]:8470");
  ASSERT_TRUE(u) << u.status().message();
  EXPECT_EQ(u->host, "::1");
  for (const char* bad : {"ftp://127.0.0.1:21", "http://127.0.0.1", "http://127.0.0.1:70000",
                          "http://127.0.0.1:0", "http://::1:8470", "http://[::1:8470",
                          "http://127.0.0.1:8470/v1", "http://:8470", "http://127.0.0.1:84a0"}) {
    EXPECT_FALSE(parse_admin_url(bad)) << bad;
  }
}

TEST(AdminCallTest, ExitCodesTellRefusedUnauthorizedTimedOutAndUnreachableApart) {
  testing::TempDir dir;
  std::ofstream(dir.file("token")) << "t0k\n";
  std::ofstream(dir.file("wrong")) << "nope\n";
  auto s = AdminServer::start(
      "127.0.0.1:0", "t0k",
      {.status_json = [] { return std::string(R"({"state":"running"})"); },
       .metrics_text = [] { return std::string(); },
       .pause = [](const std::string& reason, bool) -> Result<std::string> {
         if (reason == "slow") {
           return Status::error("not every instance is quiet within 60 s", ErrorKind::kTimeout);
         }
         return Status::error("another pause or resume came after this one");
       }});
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  cli::AdminOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(s.value()->port());
  o.token_file = dir.file("token");
  std::string out;
  EXPECT_EQ(cli::admin_call(o, "GET", "/v1/status", "", out), cli::kExitOk);
  EXPECT_EQ(cli::admin_call(o, "POST", "/v1/pause", R"({"reason":"slow"})", out),
            cli::kExitTimedOut);
  EXPECT_EQ(cli::admin_call(o, "POST", "/v1/pause", R"({"reason":"x"})", out), cli::kExitRefused);
  o.token_file = dir.file("wrong");
  EXPECT_EQ(cli::admin_call(o, "GET", "/v1/status", "", out), cli::kExitUnauthorized);
  o.token_file = "";
  EXPECT_EQ(cli::admin_call(o, "GET", "/v1/status", "", out), cli::kExitUnauthorized);
  o.token_file = dir.file("absent");
  EXPECT_EQ(cli::admin_call(o, "GET", "/v1/status", "", out), cli::kExitUsage);
  o.token_file = dir.file("token");
  o.url = "http://127.0.0.1:1";
  EXPECT_EQ(cli::admin_call(o, "GET", "/v1/status", "", out), cli::kExitUnreachable);
  o.url = "gopher://127.0.0.1:1";
  EXPECT_EQ(cli::admin_call(o, "GET", "/v1/status", "", out), cli::kExitUsage);
}

/// A loopback listener that never accepts (its file descriptor, and its address in `at`).
int silent_listener(int backlog, sockaddr_in& at) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  at = {};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  EXPECT_EQ(listen(fd, backlog), 0);
  socklen_t len = sizeof at;
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len), 0);
  return fd;
}

TEST(AdminClientTest, AnEndpointThatAcceptsButNeverAnswersIsATimeout) {
  sockaddr_in a{};
  const int fd = silent_listener(4, a);  // the kernel accepts; nobody ever answers
  auto r = http_request("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)), "GET",
                        "/v1/status", "", "", 300);
  close(fd);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().kind(), ErrorKind::kTimeout) << r.status().message();
}

TEST(AdminClientTest, AConnectionThatIsNeverEstablishedIsUnreachableNotATimeout) {
  // A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs
  // until the deadline — exit 3 (nothing reached), not 6 (a request left unanswered).
  sockaddr_in a{};
  const int fd = silent_listener(0, a);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    (void)connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto r = http_request("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)), "GET",
                        "/v1/status", "", "", 500);
  for (const int c : fillers) close(c);
  close(fd);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().kind(), ErrorKind::kTimeout) << r.status().message();
  EXPECT_NE(r.status().message().find("no connection within"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace sluice::admin
