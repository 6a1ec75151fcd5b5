// A throwaway PostgreSQL server for one test: a new cluster (initdb) in a
// temporary folder, listening on 127.0.0.1 and a free port only (no unix
// socket), with fsync off, removed with the PostgresServer. Uses Debian's
// postgresql package (/usr/lib/postgresql/N/bin). PostgreSQL refuses to run
// as root, so under root the server runs as the package's `postgres` user
// (setpriv, which execs the server itself, so that its signals reach it), and
// its folder is theirs.
//
// PostgresServer::unavailable() says why one cannot be made here, for a
// GTEST_SKIP. Not thread-safe.
#pragma once

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace calm::testing {

class PostgresServer {
 public:
  // Throws std::runtime_error with initdb's or the server's log.
  PostgresServer() : port_(free_port()) {
    const auto bin = bin_dir();
    if (!bin) throw std::runtime_error(*unavailable());
    std::string pattern = (std::filesystem::temp_directory_path() / "calm-pg-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    const std::string data = dir_ + "/data";
    std::vector<std::string> as_user;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (!pw || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("cannot hand " + dir_ + " to the postgres user");
      }
      as_user = {setpriv(), "--reuid=postgres", "--regid=postgres", "--init-groups", "--"};
    }
    std::vector<std::string> initdb = as_user;
    initdb.insert(initdb.end(), {*bin + "/initdb", "-D", data, "-U", "calm", "-A", "trust",
                                 "--no-sync", "--no-instructions"});
    ChildProcess init(initdb, dir_ + "/initdb.log");
    const auto code = init.wait_exit(std::chrono::seconds(120));
    if (code != 0) throw std::runtime_error("initdb failed: " + init.log());
    std::vector<std::string> server = as_user;
    server.insert(server.end(), {*bin + "/postgres", "-D", data, "-p", std::to_string(port_), "-c",
                                 "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                                 "-c", "fsync=off", "-c", "max_connections=50"});
    process_.emplace(server, dir_ + "/server.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (PQping(url().c_str()) != PQPING_OK) {
      if (auto exited = process_->wait_exit(std::chrono::milliseconds(100))) {
        throw std::runtime_error("postgres exited with " + std::to_string(*exited) + ": " +
                                 process_->log());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("postgres did not start: " + process_->log());
      }
    }
  }
  ~PostgresServer() {
    if (process_) {
      ::kill(process_->pid(), SIGINT);  // fast shutdown: clients are cut, not waited for
      process_->wait_exit(std::chrono::seconds(30));
      process_.reset();
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The URL of its `postgres` database, as calm's knowledge setting takes it.
  std::string url() const {
    return "postgresql://calm@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }
  int port() const { return port_; }

  // Why a server cannot be made here, or nullopt when it can.
  static std::optional<std::string> unavailable() {
    if (!bin_dir()) {
      return "no PostgreSQL server here (/usr/lib/postgresql/N/bin/initdb; Debian's postgresql "
             "package, which scripts/install-deps.sh installs)";
    }
    if (::geteuid() == 0 && (!::getpwnam("postgres") || setpriv().empty())) {
      return "running as root without a postgres user or setpriv to run the server as";
    }
    return std::nullopt;
  }

 private:
  static std::optional<std::string> bin_dir() {
    std::optional<std::string> best;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      const auto bin = entry.path() / "bin";
      if (std::filesystem::exists(bin / "initdb") && (!best || bin.string() > *best)) {
        best = bin.string();
      }
    }
    return best;
  }
  static std::string setpriv() {
    for (const char* path : {"/usr/bin/setpriv", "/bin/setpriv"}) {
      if (::access(path, X_OK) == 0) return path;
    }
    return "";
  }

  int port_;
  std::string dir_;
  std::optional<ChildProcess> process_;
};

}  // namespace calm::testing
