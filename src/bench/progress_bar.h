// The progress line `calm bench run` and `calm bench suite` draw on stderr
// while a workload replays: done/total and errors, redrawn at most 5 times a
// second. On a terminal one line is redrawn in place; elsewhere (a log, CI)
// each redraw is a line of its own.
//
// Not thread-safe: update() calls must be serialised (the replayer's
// on_record callback is).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

namespace calm {

class ProgressBar {
 public:
  // label: printed before the bar ("" for none).
  ProgressBar(size_t total, bool terminal, std::string label = "")
      : total_(total), terminal_(terminal), label_(std::move(label)) {}

  void update(size_t done, size_t errors);

 private:
  const size_t total_;
  const bool terminal_;
  const std::string label_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace calm
