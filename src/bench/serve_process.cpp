#include "bench/serve_process.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <thread>

#include "util/url.h"

namespace calm {
namespace {

using Clock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

std::optional<int> find_listening_port(const std::string& log) {
  static const std::string kMarker = "calm: listening on ";
  const size_t at = log.find(kMarker);
  if (at == std::string::npos) return std::nullopt;
  const size_t end = log.find('\n', at);
  if (end == std::string::npos) return std::nullopt;  // the line is still being written
  std::string address = log.substr(at + kMarker.size(), end - at - kMarker.size());
  while (!address.empty() && (address.back() == '\r' || address.back() == ' ')) address.pop_back();
  // The port must be written out: the URL parser's default of 80 is not what
  // the server said.
  const size_t colon = address.rfind(':');
  const size_t bracket = address.rfind(']');  // an IPv6 host's colons are not the port's
  if (address.rfind("http://", 0) != 0 || colon < 7 ||
      (bracket != std::string::npos && colon < bracket)) {
    return std::nullopt;
  }
  try {
    return parse_url(address).port;
  } catch (const UrlError&) {
    return std::nullopt;
  }
}

ServeProcess::ServeProcess(Options options) : options_(std::move(options)) {
  // Everything the child needs is prepared before fork: between fork and
  // exec a multithreaded parent's child may only make async-signal-safe calls.
  std::vector<std::string> argv_strings = {options_.executable};
  argv_strings.insert(argv_strings.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int log_fd =
      ::open(options_.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error(options_.log_path + ": cannot open the log file");
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    // The parent may have signals blocked or ignored; the server sets its own.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  if (pid_ < 0) throw std::runtime_error("cannot fork to start " + options_.executable);

  const auto started = Clock::now();
  while (true) {
    if (const auto port = find_listening_port(read_file(options_.log_path))) {
      port_ = *port;
      break;
    }
    if (const auto code = wait_exit(std::chrono::milliseconds(50))) {
      fail("calm serve exited with status " + std::to_string(*code) + " before listening");
    }
    if (Clock::now() - started > options_.start_timeout) {
      fail("calm serve did not listen within " + std::to_string(options_.start_timeout.count()) +
           " s");
    }
  }
  url_ = "http://127.0.0.1:" + std::to_string(port_);

  const auto deadline = Clock::now() + options_.health_timeout;
  int last_status = 0;
  while (Clock::now() < deadline) {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(std::chrono::seconds(2));
    client.set_read_timeout(std::chrono::seconds(10));
    if (const auto res = client.Get("/health")) {
      last_status = res->status;
      if (res->status == 200) return;
    }
    if (const auto code = wait_exit(std::chrono::milliseconds(200))) {
      fail("calm serve exited with status " + std::to_string(*code) + " before it was healthy");
    }
  }
  fail("GET /health did not answer 200 within " + std::to_string(options_.health_timeout.count()) +
       " s (last status " + std::to_string(last_status) + ")");
}

ServeProcess::~ServeProcess() {
  stop();
}

void ServeProcess::fail(const std::string& why) {
  stop();
  throw std::runtime_error(why + "; log " + options_.log_path + " ends:\n" + log_tail());
}

std::optional<int> ServeProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (done < 0) {  // not our child any more (should not happen)
      pid_ = -1;
      return -1;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::optional<int> ServeProcess::stop() {
  if (pid_ <= 0) return std::nullopt;
  const pid_t pid = pid_;
  ::kill(pid, SIGTERM);
  if (auto code = wait_exit(options_.stop_grace)) return code;
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  pid_ = -1;
  return 128 + SIGKILL;
}

std::string ServeProcess::log_tail(size_t bytes) const {
  const std::string log = read_file(options_.log_path);
  return log.size() > bytes ? "..." + log.substr(log.size() - bytes) : log;
}

}  // namespace calm
