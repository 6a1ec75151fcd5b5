// A network namespace made by a test (`ip netns` and a veth pair), so that a
// node runs as on another machine: its own address and port space, reached
// from this namespace only through the pair. Traffic stays on the test's
// addresses (10.100-199.x.y/30, from this process's pid and the index).
// Everything is removed when the NetNamespace is destroyed.
//
//   this namespace  ──  veth "cmPID-Ih" 10.a.b.(4I+1)/30
//                          │
//   "calm-PID-I"    ──  veth "cmPID-In" 10.a.b.(4I+2)/30, and lo
//
// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2:
// NetNamespace::unavailable() says why they cannot be made here, for a
// GTEST_SKIP. Not thread-safe; one test at a time in a process.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace calm::testing {

class NetNamespace {
 public:
  static constexpr int kProbeIndex = 63;  // the last /30 of this process's range; tests use 0..62

  // Throws std::runtime_error naming the command that failed.
  explicit NetNamespace(int index)
      : name_("calm-" + std::to_string(::getpid()) + "-" + std::to_string(index)),
        host_link_("cm" + std::to_string(::getpid() % 10000000) + "-" + std::to_string(index) +
                   "h"),
        inner_link_(host_link_.substr(0, host_link_.size() - 1) + "n") {
    const int pid = ::getpid();
    const std::string net =
        "10." + std::to_string(100 + (pid / 256) % 100) + "." + std::to_string(pid % 256) + ".";
    host_address_ = net + std::to_string(4 * index + 1);
    address_ = net + std::to_string(4 * index + 2);
    try {
      run({"netns", "add", name_});
      run({"link", "add", host_link_, "type", "veth", "peer", "name", inner_link_});
      run({"link", "set", inner_link_, "netns", name_});
      run({"addr", "add", host_address_ + "/30", "dev", host_link_});
      run({"link", "set", host_link_, "up"});
      run({"netns", "exec", name_, ip(), "addr", "add", address_ + "/30", "dev", inner_link_});
      run({"netns", "exec", name_, ip(), "link", "set", inner_link_, "up"});
      run({"netns", "exec", name_, ip(), "link", "set", "lo", "up"});
    } catch (...) {
      remove();
      throw;
    }
  }
  ~NetNamespace() { remove(); }
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  // Why namespaces cannot be made here, or nullopt when they can: one is
  // made, with its pair, and a command run inside it, then removed.
  static std::optional<std::string> unavailable() {
    if (ip().empty()) return "no `ip` command (iproute2)";
    try {
      NetNamespace probe(kProbeIndex);
      run({"netns", "exec", probe.name_, ip(), "link", "show", "lo"});
    } catch (const std::exception& e) {
      return std::string(e.what()) +
             " (network namespaces need root: CAP_SYS_ADMIN, CAP_NET_ADMIN)";
    }
    return std::nullopt;
  }

  // The command prefix that runs a program inside.
  std::vector<std::string> prefix() const { return {ip(), "netns", "exec", name_}; }
  const std::string& address() const { return address_; }  // inside, reachable from here

  // Cuts the pair inside the namespace (no reset is sent: packets to it are
  // lost, as when a machine drops off the network), and mends it again.
  void cut() { run({"netns", "exec", name_, ip(), "link", "set", inner_link_, "down"}); }
  void mend() { run({"netns", "exec", name_, ip(), "link", "set", inner_link_, "up"}); }

 private:
  static std::string ip() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (std::filesystem::exists(path)) return path;
    }
    return "";
  }
  // Deleting the namespace deletes the pair; the link is deleted too in
  // case it never moved there.
  void remove() const {
    std::system((ip() + " netns del " + name_ + " >/dev/null 2>&1").c_str());
    std::system((ip() + " link del " + host_link_ + " >/dev/null 2>&1").c_str());
  }
  static void run(const std::vector<std::string>& args) {
    std::string command = ip();
    for (const std::string& arg : args) command += " " + arg;
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
      throw std::runtime_error("failed: " + command);
    }
  }

  std::string name_, host_link_, inner_link_, host_address_, address_;
};

}  // namespace calm::testing
