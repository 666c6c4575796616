#pragma once
/// Signs and checks the fleet's control records with a secret the instances share
/// (fleet.key_file): an HMAC-SHA256 over the record's key and value, so that whoever can write
/// to the topic without the secret cannot pause or resume the fleet, stop an instance, forge
/// its state or forget it (DESIGN.md invariant 9, docs/security.md).
///
/// A signed value reads `hmac-sha256:<64 hex digits>\n<body>`. With a key, `open` accepts only
/// values signed with it (a tombstone cannot be signed: `forget` writes a signed "forgotten"
/// record instead). Without a key nothing is signed, and a signed value is opened without
/// being checked.
/// Thread safety: const methods from any thread.

#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::fleet {

class RecordSigner {
 public:
  /// No key: records are neither signed nor checked.
  RecordSigner() = default;
  /// The secret is the file's content, a trailing newline removed; at least 16 bytes.
  static Result<RecordSigner> from_file(const std::string& path);
  static Result<RecordSigner> with_secret(std::string secret);

  bool enabled() const { return !secret_.empty(); }
  /// The value to write under `key`.
  std::string seal(std::string_view key, std::string_view body) const;
  /// The body of `value`, read under `key`; an error (saying why) when a key is set and the
  /// value is not signed with it.
  Result<std::string> open(std::string_view key, std::string_view value) const;

 private:
  std::string mac(std::string_view key, std::string_view body) const;
  std::string secret_;
};

}  // namespace sluice::fleet
