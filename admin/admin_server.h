#pragma once
/// The admin HTTP endpoint (Boost.Beast on Asio), DESIGN.md §4:
///   GET /healthz   200 while the process serves
///   GET /metrics   Prometheus text exposition
///   GET /v1/status the pipeline's state, partitions, expired-offset gaps, table freshness
///   POST /v1/pause ({"reason": "...", "local": true} optional): 200 once quiet; POST /v1/resume
/// With a token file, every /v1 request needs `Authorization: Bearer <token>` (compared in
/// constant time). Errors are JSON `{"error": ...}` with 400/401/404/405/413/431/503.
/// Pause blocks its connection until quiet (bounded); other connections are served meanwhile.
/// Pause and resume run one at a time on the server's own worker thread; beyond 4 waiting,
/// requests are refused with 503. stop() waits for the one in progress.
/// Hardening: requests are bounded (8 KiB of headers, 64 KiB of body), each connection has a
/// 10 s read deadline (cleared while a pause waits) and a 10 s deadline per answer written, and
/// at most 100 requests, and at most 64 connections are served at once;
/// a connection beyond that is closed at once. None of it can stall the pipeline: the server runs
/// on its own thread and reads pipeline state through thread-safe snapshots.
/// Thread safety: start/stop from one thread; handlers run on the server's thread.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace sluice::admin {

struct AdminHandlers {
  std::function<std::string()> status_json{};   ///< body of GET /v1/status
  std::function<std::string()> spool_json{};    ///< body of GET /v1/spool (501 when unset)
  std::function<std::string()> metrics_text{};  ///< body of GET /metrics
  /// POST /v1/pause and /v1/resume: the status JSON once done, or an error (503). When unset,
  /// the endpoints answer 501. `local`: pause this instance alone, at once (the fleet topic out
  /// of reach); the fleet adopts it later.
  std::function<Result<std::string>(const std::string& reason, bool local)> pause{};
  std::function<Result<std::string>()> resume{};
};

/// Deadlines of one connection: reading a request, and writing one answer. The write deadline
/// starts when the answer is ready, however long a pause waited for it.
struct AdminTimeouts {
  std::chrono::milliseconds read{10'000};
  std::chrono::milliseconds write{10'000};
};

class AdminServer {
 public:
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// Binds `listen` ("host:port"; port 0 picks a free one) and starts serving. `token` empty
  /// means no authentication.
  static Result<std::unique_ptr<AdminServer>> start(const std::string& listen, std::string token,
                                                    AdminHandlers handlers,
                                                    AdminTimeouts timeouts = {});
  /// The bound port (useful with port 0).
  int port() const;
  /// Where it listens, "host:port" (an IPv6 host in brackets), as a client would dial it.
  const std::string& address() const;
  void stop();

  struct Impl;  ///< opaque: the Asio machinery lives in the .cc

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Reads a token file (first line, trailing whitespace removed).
Result<std::string> read_token_file(const std::string& path);

/// Compares without an early exit, so timing does not reveal how much of a token matched.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace sluice::admin
