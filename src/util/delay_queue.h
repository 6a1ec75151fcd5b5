// DelayQueue: runs a function once its time has come, on one thread that
// sleeps until the earliest deadline (no polling). The pipeline uses it for
// models[].inject_delay_ms, so a deliberately slow model holds no thread
// while it waits; the registry uses it to ask a down remote backend again
// off the transport's threads.
//
// Thread-safe. stop() (and the destructor) runs nothing more and joins the
// thread; what was still waiting is dropped (its function destroyed, not
// called), and later after() calls are dropped too.
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
  ~DelayQueue() { stop(); }
  DelayQueue(const DelayQueue&) = delete;
  DelayQueue& operator=(const DelayQueue&) = delete;

  // Calls fn on the queue's thread once `delay` has passed. Thread-safe.
  void after(std::chrono::milliseconds delay, std::function<void()> fn) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;  // fn is destroyed here, on the caller's thread
      due_.emplace(Clock::now() + delay, std::move(fn));
    }
    wake_.notify_all();
  }

  // Idempotent; must not be called from a function the queue runs.
  void stop() {
    std::multimap<Clock::time_point, std::function<void()>> dropped;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    dropped.swap(due_);  // destroyed after the lock is let go
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
