#pragma once
/// A test's own certificate authority and the certificates it signs (EC P-256, valid a day),
/// made fresh with the openssl command for each test: TLS to MariaDB, HTTPS fronts.
/// Throws std::runtime_error with openssl's output when a step fails.

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "testing/harness.h"

namespace sluice::testing {

class Certificates {
 public:
  Certificates(const TempDir& dir, const std::string& name) : dir_(dir), name_(name) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "1", "-subj", "/CN=" + name + " test CA", "-keyout", file("ca.key"), "-out",
             ca()});
  }
  std::string ca() const { return file("ca.pem"); }
  std::string file(const std::string& f) const { return dir_.file(name_ + "-" + f); }

  /// Issues `<who>.pem` and `<who>.key`; `san` is the subjectAltName ("" for none).
  void issue(const std::string& who, const std::string& cn, const std::string& san) {
    const std::string ext = file(who + ".ext");
    std::ofstream(ext) << (san.empty() ? "" : "subjectAltName=" + san + "\n");
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
             "/CN=" + cn, "-keyout", file(who + ".key"), "-out", file(who + ".csr")});
    openssl({"x509", "-req", "-in", file(who + ".csr"), "-CA", ca(), "-CAkey", file("ca.key"),
             "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", file(who + ".pem")});
  }

 private:
  static void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    if (run_command(argv, out) != 0) throw std::runtime_error("openssl failed: " + out);
  }

  const TempDir& dir_;
  std::string name_;
};

}  // namespace sluice::testing
