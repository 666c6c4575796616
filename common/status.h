#pragma once
/// Errors as values. A `Status` is either ok or carries a message; a `Result<T>` is a value or a
/// `Status`. Both are [[nodiscard]]: ignoring one is a compile warning (an error here). Used at
/// every seam where a failure is expected (I/O, parsing); exceptions stay at start-up.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace sluice {

/// What kind of failure a Status is, for the few callers that act on it differently than on
/// its message (e.g. an exit code systemd does not restart after).
enum class ErrorKind {
  kError,              ///< anything else
  kDuplicateInstance,  ///< another running process uses this kafka.instance_id
  kTimeout,            ///< what was asked did not happen in time (it may still)
  /// The consumer group fenced this member (KIP-345): another member joined with the same
  /// instance id, or this one came back after its own session had expired. A new consumer
  /// can join again.
  kFenced,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return {}; }
  static Status error(std::string message, ErrorKind kind = ErrorKind::kError) {
    return Status(std::move(message), kind);
  }

  bool is_ok() const { return !failed_; }
  ErrorKind kind() const { return kind_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }
  /// Explicit, greppable way to drop a status on purpose.
  void ignore() const {}

 private:
  Status(std::string message, ErrorKind kind)
      : failed_(true), kind_(kind), message_(std::move(message)) {}
  bool failed_ = false;
  ErrorKind kind_ = ErrorKind::kError;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).is_ok());
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice
