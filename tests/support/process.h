// Child processes for integration tests: the real `calm serve` and the real
// llama-server, on loopback ports, stopped when the test ends.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/test_env.h"

extern char** environ;

namespace calm::testing {

// How a child's stdout and stderr reach its log file: written by the child
// itself, or through a pipe that this process copies into the file (so that
// the child's own file limits, such as RLIMIT_FSIZE, never stop its log).
enum class LogTo { kFile, kPipe };

// A child process whose stdout (and stderr) go to a log file.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, const std::string& log_path,
               LogTo log_to = LogTo::kFile)
      : log_path_(log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int pipe_fds[2] = {-1, -1};
    if (log_to == LogTo::kPipe) {
      if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
      std::ofstream(log_path, std::ios::trunc).flush();
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    } else {
      posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                       0644);
    }
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    if (log_to == LogTo::kPipe) {
      ::close(pipe_fds[1]);
      // Ends at the pipe's end of file: when the child has exited.
      copier_ = std::thread([fd = pipe_fds[0], path = log_path] {
        std::ofstream out(path, std::ios::app | std::ios::binary);
        char buffer[4096];
        for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) {
          out.write(buffer, n);
          out.flush();
        }
        ::close(fd);
      });
    }
    if (pid_ < 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  ~ChildProcess() {
    stop();
    if (copier_.joinable()) copier_.join();
  }

  // Exit code once it has ended by itself within the timeout, else nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (!wait_exit(std::chrono::seconds(10))) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

  pid_t pid() const { return pid_; }

  std::string log() const {
    std::ifstream in(log_path_);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::thread copier_;  // LogTo::kPipe: copies the pipe into the log file
};

inline std::string temp_path(const std::string& name) {
  // A new, empty directory each call (mkdtemp): a directory named after the
  // pid could be one an earlier test process with the same pid left behind.
  std::string pattern = (std::filesystem::temp_directory_path() /
                         ("calm-test-" + std::to_string(::getpid()) + "-XXXXXX"))
                            .string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + pattern);
  return (std::filesystem::path(pattern) / name).string();
}

// One `calm` command (not serve) run to its end: its exit code (-1 if it ran
// past the timeout and was stopped) and what it printed. The output goes to
// `log`, or to a new temporary file.
struct CliRun {
  int code;
  std::string output;
};
inline CliRun run_calm(std::vector<std::string> args, const std::string& log = "",
                       std::chrono::seconds timeout = std::chrono::seconds(240)) {
  args.insert(args.begin(), env("CALM_BIN"));
  ChildProcess process(args, log.empty() ? temp_path("calm.out") : log);
  const auto code = process.wait_exit(timeout);
  return {code.value_or(-1), process.log()};
}

// A fleet file already on disk, for CalmServer (its relative paths resolve
// against its own folder, as `calm serve` resolves them).
struct FleetFile {
  std::string path;
};

// `calm serve` on a free port, started from a fleet file's text.
class CalmServer {
 public:
  explicit CalmServer(const std::string& fleet_yaml, int port = 0,
                      std::chrono::seconds start_timeout = std::chrono::seconds(60)) {
    config_path_ = temp_path("fleet.yaml");
    std::ofstream(config_path_) << fleet_yaml;
    start({"--port", std::to_string(port)}, config_path_ + ".log", start_timeout);
  }
  // An existing fleet file, with extra `calm serve` arguments.
  explicit CalmServer(const FleetFile& file, std::vector<std::string> extra_args = {},
                      std::chrono::seconds start_timeout = std::chrono::seconds(60),
                      LogTo log_to = LogTo::kFile) {
    config_path_ = file.path;
    extra_args.insert(extra_args.begin(), {"--port", "0"});
    start(std::move(extra_args), temp_path("serve.log"), start_timeout, log_to);
  }

  int port() const { return port_; }
  // Whether it said it listens on https:// (server.tls).
  bool tls() const { return tls_; }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c;
  }
  std::string log() const { return process_->log(); }
  const std::string& config_path() const { return config_path_; }
  pid_t pid() const { return process_->pid(); }
  // Sends SIGTERM and waits (bounded) for the exit: its code, or nullopt.
  std::optional<int> terminate(std::chrono::seconds timeout) {
    ::kill(process_->pid(), SIGTERM);
    return process_->wait_exit(timeout);
  }

 private:
  void start(std::vector<std::string> args, const std::string& log_path,
             std::chrono::seconds start_timeout, LogTo log_to = LogTo::kFile) {
    std::vector<std::string> argv = {env("CALM_BIN"), "serve", "--config", config_path_};
    argv.insert(argv.end(), args.begin(), args.end());
    process_.emplace(argv, log_path, log_to);
    const auto deadline = std::chrono::steady_clock::now() + start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      // "listening on http://HOST:PORT", or https:// with server.tls.
      const std::string log = process_->log();
      const auto at = log.find("listening on http");
      const auto scheme_end = at == std::string::npos ? at : log.find("://", at);
      const auto newline =
          scheme_end == std::string::npos ? scheme_end : log.find('\n', scheme_end);
      if (newline != std::string::npos) {
        tls_ = log.compare(at, 18, "listening on https") == 0;
        const auto colon = log.rfind(':', newline);
        port_ = std::stoi(log.substr(colon + 1));
        return;
      }
      if (auto code = process_->wait_exit(std::chrono::milliseconds(50))) {
        throw std::runtime_error("calm serve exited with " + std::to_string(*code) + ": " +
                                 process_->log());
      }
    }
    throw std::runtime_error("calm serve did not start: " + process_->log());
  }

  std::string config_path_;
  std::optional<ChildProcess> process_;
  int port_ = 0;
  bool tls_ = false;
};

// A port nothing listens on right now (bound to 0, then released).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Waits until GET host:port+path answers 200.
inline bool wait_healthy(int port, const std::string& path, std::chrono::seconds timeout,
                         const std::string& host = "127.0.0.1") {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    httplib::Client c(host, port);
    c.set_connection_timeout(1, 0);
    if (auto res = c.Get(path.c_str()); res && res->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace calm::testing
