// RaplMeter: the energy of the CPU packages, from Linux powercap (Intel RAPL;
// recent kernels expose AMD's counters the same way).
//
// Counts every top-level package domain ROOT/intel-rapl:N/energy_uj and sums
// them. Sub-domains (intel-rapl:N:M: cores, uncore, dram) are parts of their
// package and not added again; a top-level domain whose name is not
// "package-*" (the "psys" platform domain, which contains the packages) is
// skipped too, as are the intel-rapl-mmio:N duplicates of the packages.
//
// Each counter wraps around at max_energy_range_uj; a wrap is seen as a
// reading below the previous one. A counter can wrap at most once between two
// readings without being missed, so read at least once per wrap period (tens
// of minutes at full power for the usual 2^38 µJ range; the MAPE-K loop reads
// far more often).
//
// energy_uj is often readable by root only: an unreadable domain counts as
// absent.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "meters/energy_meter.h"

namespace calm {

class RaplMeter : public EnergyMeter {
 public:
  static constexpr const char* kDefaultRoot = "/sys/class/powercap";

  // Finds the readable package domains under `root` and takes their first
  // readings. A meter without domains reads 0 forever: use open() to tell.
  explicit RaplMeter(std::string root = kDefaultRoot);

  // A meter over the readable package domains under `root`, or nullptr when
  // there is none (then `why_not`, if given, says why).
  static std::unique_ptr<RaplMeter> open(const std::string& root = kDefaultRoot,
                                         std::string* why_not = nullptr);

  std::string source() const override { return "rapl"; }
  // Thread-safe. A domain that cannot be read this time adds nothing until it
  // can be read again.
  double joules_total() override;
  // The package domains counted (their directories). Thread-safe.
  size_t domain_count() const { return domains_.size(); }

 private:
  struct Domain {
    std::string energy_path;    // .../energy_uj
    uint64_t max_range_uj = 0;  // 0: unknown; a wrap then counts from 0
    uint64_t last_uj = 0;       // the previous reading
  };

  const std::string root_;
  std::mutex mutex_;
  std::vector<Domain> domains_;  // set in the constructor; last_uj guarded by mutex_
  uint64_t total_uj_ = 0;        // guarded by mutex_
};

}  // namespace calm
