// One request's share of the metered energy (see energy_attributor.h): it
// begins when made and ends once, at the first end() or at destruction, so a
// request that is cancelled or fails still leaves the attribution balanced.
#pragma once

#include <mutex>
#include <string>

#include "meters/energy_attributor.h"

namespace calm {

class EnergyShare {
 public:
  // attributor may be null (no meter): every figure is then 0 with no source.
  explicit EnergyShare(EnergyAttributor* attributor)
      : attributor_(attributor), token_(attributor ? attributor->begin() : 0) {}
  ~EnergyShare() { end(); }
  EnergyShare(const EnergyShare&) = delete;
  EnergyShare& operator=(const EnergyShare&) = delete;

  // Thread-safe. The joules attributed to this request (the same on every call).
  double end() {
    std::lock_guard lock(mutex_);
    if (attributor_ && !ended_) joules_ = attributor_->end(token_);
    ended_ = true;
    return joules_;
  }
  std::string source() const { return attributor_ ? attributor_->source() : ""; }

 private:
  EnergyAttributor* attributor_;
  uint64_t token_;
  std::mutex mutex_;
  bool ended_ = false;  // guarded by mutex_
  double joules_ = 0;   // guarded by mutex_
};

}  // namespace calm
