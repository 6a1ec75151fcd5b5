// GenerationStream: the channel between an engine thread and an HTTP handler.
#include "engines/engine.h"

namespace calm {

void GenerationStream::push_delta(std::string text) {
  if (text.empty()) return;
  {
    std::lock_guard lock(mutex_);
    if (final_) return;  // nothing may follow the final event
    events_.emplace_back(Delta{std::move(text)});
  }
  cv_.notify_all();
  notify(false);
}

void GenerationStream::notify(bool is_final) {
  std::function<void()> listener;
  {
    std::lock_guard lock(mutex_);
    if (!listener_ || (listener_final_only_ && !is_final)) return;
    listener = listener_;
  }
  listener();
}

void GenerationStream::set_listener(std::function<void()> listener, bool final_only) {
  bool ready = false, is_final = false;
  {
    std::lock_guard lock(mutex_);
    listener_ = std::move(listener);
    listener_final_only_ = final_only;
    is_final = final_.has_value();
    ready = is_final || (!final_only && !events_.empty());
  }
  if (ready) notify(is_final);
}

std::optional<GenerationStream::Event> GenerationStream::try_next() {
  std::lock_guard lock(mutex_);
  if (!events_.empty()) {
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
  }
  if (final_ && !final_taken_) {
    final_taken_ = true;
    return final_;
  }
  return std::nullopt;
}

void GenerationStream::finish(GenerationResult result) {
  {
    std::lock_guard lock(mutex_);
    if (final_) return;
    final_ = Event{std::move(result)};
  }
  cv_.notify_all();
  notify(true);
}

void GenerationStream::fail(EngineError error) {
  {
    std::lock_guard lock(mutex_);
    if (final_) return;
    final_ = Event{std::move(error)};
  }
  cv_.notify_all();
  notify(true);
}

std::optional<GenerationStream::Event> GenerationStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return !events_.empty() || final_.has_value(); });
  if (!events_.empty()) {
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
  }
  if (final_) return final_;
  return std::nullopt;
}

GenerationResult GenerationStream::wait() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return final_.has_value(); });
  events_.clear();
  if (auto* error = std::get_if<EngineError>(&*final_)) throw *error;
  return std::get<GenerationResult>(*final_);
}

void GenerationStream::cancel() {
  std::function<void()> on_cancel;
  {
    std::lock_guard lock(mutex_);
    if (!cancelled_) on_cancel = on_cancel_;
    cancelled_ = true;
  }
  cv_.notify_all();
  if (on_cancel) on_cancel();
}

void GenerationStream::set_on_cancel(std::function<void()> on_cancel) {
  bool already = false;
  {
    std::lock_guard lock(mutex_);
    on_cancel_ = on_cancel;
    already = cancelled_;
  }
  if (already && on_cancel) on_cancel();
}

bool GenerationStream::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

bool GenerationStream::closed() const {
  std::lock_guard lock(mutex_);
  return final_.has_value();
}

}  // namespace calm
