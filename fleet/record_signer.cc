#include "fleet/record_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <sstream>

namespace sluice::fleet {
namespace {

constexpr std::string_view kPrefix = "hmac-sha256:";
constexpr size_t kHexLength = 64;
constexpr size_t kMinSecret = 16;

}  // namespace

Result<RecordSigner> RecordSigner::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("fleet.key_file: cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  auto signer = with_secret(std::move(secret));
  if (!signer) return Status::error("fleet.key_file: " + path + ": " + signer.status().message());
  return signer;
}

Result<RecordSigner> RecordSigner::with_secret(std::string secret) {
  if (secret.size() < kMinSecret) {
    return Status::error("the key must be at least " + std::to_string(kMinSecret) +
                         " bytes (e.g. `openssl rand -hex 32`)");
  }
  RecordSigner s;
  s.secret_ = std::move(secret);
  return s;
}

std::string RecordSigner::mac(std::string_view key, std::string_view body) const {
  // Over the key, a separator no key contains, and the body: a value signed for one key is
  // refused under another (an instance's record cannot pass for the target).
  std::string message;
  message.reserve(key.size() + 1 + body.size());
  message.append(key).push_back('\0');
  message.append(body);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

std::string RecordSigner::seal(std::string_view key, std::string_view body) const {
  if (!enabled()) return std::string(body);
  std::string out(kPrefix);
  out += mac(key, body);
  out.push_back('\n');
  out.append(body);
  return out;
}

Result<std::string> RecordSigner::open(std::string_view key, std::string_view value) const {
  const bool signed_value = value.starts_with(kPrefix) &&
                            value.size() > kPrefix.size() + kHexLength &&
                            value[kPrefix.size() + kHexLength] == '\n';
  if (!signed_value) {
    if (enabled()) return Status::error("not signed");
    return std::string(value);
  }
  const std::string_view body = value.substr(kPrefix.size() + kHexLength + 1);
  if (!enabled()) return std::string(body);
  const std::string want = mac(key, body);
  if (CRYPTO_memcmp(want.data(), value.data() + kPrefix.size(), kHexLength) != 0) {
    return Status::error("signed with another key");
  }
  return std::string(body);
}

}  // namespace sluice::fleet
