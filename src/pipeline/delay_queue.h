// DelayQueue: runs a function once its time has come, on one thread that
// sleeps until the earliest deadline (no polling). The pipeline uses it for
// models[].inject_delay_ms, so a deliberately slow model holds no thread
// while it waits.
//
// Thread-safe. The destructor runs nothing more and joins the thread; what
// was still waiting is dropped (its function destroyed, not called).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace calm {

class DelayQueue {
 public:
  using Clock = std::chrono::steady_clock;

  DelayQueue() : thread_([this] { run(); }) {}
  ~DelayQueue() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  DelayQueue(const DelayQueue&) = delete;
  DelayQueue& operator=(const DelayQueue&) = delete;

  // Calls fn on the queue's thread once `delay` has passed. Thread-safe.
  void after(std::chrono::milliseconds delay, std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      due_.emplace(Clock::now() + delay, std::move(fn));
    }
    wake_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (due_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto next = due_.begin();
      if (Clock::now() < next->first) {
        wake_.wait_until(lock, next->first);
        continue;
      }
      std::function<void()> fn = std::move(next->second);
      due_.erase(next);
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::multimap<Clock::time_point, std::function<void()>> due_;  // guarded by mutex_
  bool stopping_ = false;                                        // guarded by mutex_
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace calm
