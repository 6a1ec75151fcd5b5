// A `calm serve` child process for `calm bench suite`: started on a free
// loopback port with its output in a log file, waited for until it serves,
// and stopped the way an operator would (SIGTERM, then SIGKILL after a grace
// period), so that it flushes its knowledge store before the suite reads it.
//
// The child is started with fork/exec rather than posix_spawn so that it can
// ask the kernel for SIGTERM when the suite dies (PR_SET_PDEATHSIG): an
// interrupted suite leaves no server holding a port and gigabytes of models.
//
// Not thread-safe: one owner thread calls its methods. Construct it on a
// thread that outlives the child: Linux sends the death signal when the
// thread that forked exits, not only the process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace calm {

class ServeProcess {
 public:
  struct Options {
    std::string executable;                    // the calm binary
    std::vector<std::string> args;             // after the executable, e.g. {"serve", "-c", ...}
    std::string log_path;                      // stdout and stderr go here (truncated)
    std::chrono::seconds start_timeout{300};   // until "calm: listening on ..."
    std::chrono::seconds health_timeout{120};  // then until GET /health answers 200
    std::chrono::seconds stop_grace{10};       // SIGTERM -> SIGKILL
  };

  // Starts the child and returns once it listens and GET /health is 200.
  // Throws std::runtime_error with the reason and the log's tail when it
  // cannot start, exits, or does not become healthy in time (the child is
  // stopped first).
  explicit ServeProcess(Options options);
  // Stops the child if still running.
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // "http://127.0.0.1:PORT"
  const std::string& url() const { return url_; }
  int port() const { return port_; }

  // SIGTERM, wait up to stop_grace, then SIGKILL. Returns the exit status
  // (128 + signal for a signal), or nullopt when already stopped.
  std::optional<int> stop();

  // The last `bytes` of the log.
  std::string log_tail(size_t bytes = 2000) const;

 private:
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  [[noreturn]] void fail(const std::string& why);

  Options options_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string url_;
};

// The "calm: listening on http://HOST:PORT" line's port in a log; nullopt
// when the line is not (yet) there.
std::optional<int> find_listening_port(const std::string& log);

}  // namespace calm
