#include "bench/progress_bar.h"

#include <iostream>

namespace calm {

void ProgressBar::update(size_t done, size_t errors) {
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && drawn_ && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  drawn_ = true;
  constexpr size_t kWidth = 30;
  const size_t filled = total_ ? done * kWidth / total_ : kWidth;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::cerr << (terminal_ ? "\r" : "") << (label_.empty() ? "" : label_ + " ") << "[" << bar << "] "
            << done << "/" << total_ << " done, " << errors << " errors" << (terminal_ ? "" : "\n")
            << std::flush;
  if (terminal_ && done == total_) std::cerr << "\n";
}

}  // namespace calm
