// The energy meters (fake powercap trees in a temp dir, a missing NVML
// library, the process's own CPU time) and the attribution of a shared
// meter's energy to concurrent requests (with a meter set by hand).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "meters/cpu_time_meter.h"
#include "meters/energy_attributor.h"
#include "meters/make_energy_meter.h"
#include "meters/nvml_meter.h"
#include "meters/rapl_meter.h"
#include "support/helpers.h"

namespace calm {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_bytes;

constexpr const char* kNoSuchLibrary = "libcalm-no-such-nvml.so.1";

// A powercap domain directory with the files RAPL has.
void write_domain(const TempDir& root, const std::string& dir, const std::string& name,
                  uint64_t energy_uj, uint64_t max_range_uj) {
  fs::create_directories(root.file(dir));
  write_bytes(root.file(dir + "/name"), name + "\n");
  write_bytes(root.file(dir + "/energy_uj"), std::to_string(energy_uj) + "\n");
  write_bytes(root.file(dir + "/max_energy_range_uj"), std::to_string(max_range_uj) + "\n");
}

void set_energy(const TempDir& root, const std::string& dir, uint64_t energy_uj) {
  write_bytes(root.file(dir + "/energy_uj"), std::to_string(energy_uj) + "\n");
}

// A meter whose reading the test sets. Thread-safe.
class FakeMeter : public EnergyMeter {
 public:
  std::string source() const override { return "fake"; }
  double joules_total() override {
    std::lock_guard lock(mutex_);
    return joules_;
  }
  void add(double joules) {
    std::lock_guard lock(mutex_);
    joules_ += joules;
  }

 private:
  std::mutex mutex_;
  double joules_ = 0;  // guarded by mutex_
};

TEST(RaplMeter, RaplMeterSumsPackagesAndHandlesWrapAround) {
  TempDir root("calm-rapl");
  write_domain(root, "intel-rapl:0", "package-0", 1000, 10000);
  write_domain(root, "intel-rapl:1", "package-1", 500, 10000);
  auto meter = RaplMeter::open(root.file(""));
  ASSERT_NE(meter, nullptr);
  EXPECT_EQ(meter->source(), "rapl");
  EXPECT_EQ(meter->domain_count(), 2u);
  EXPECT_DOUBLE_EQ(meter->joules_total(), 0.0);  // counts from its creation

  set_energy(root, "intel-rapl:0", 3000);  // +2000 µJ
  set_energy(root, "intel-rapl:1", 1500);  // +1000 µJ
  EXPECT_NEAR(meter->joules_total(), 3000e-6, 1e-12);

  set_energy(root, "intel-rapl:0", 9000);  // +6000 µJ
  EXPECT_NEAR(meter->joules_total(), 9000e-6, 1e-12);
  set_energy(root, "intel-rapl:0", 500);  // wrapped: +1000 to the range, +500 past 0
  EXPECT_NEAR(meter->joules_total(), 10500e-6, 1e-12);
  EXPECT_NEAR(meter->joules_total(), 10500e-6, 1e-12);  // no change, no energy
}

TEST(RaplMeter, RaplMeterCountsOnlyTopLevelPackageDomains) {
  TempDir root("calm-rapl");
  write_domain(root, "intel-rapl:0", "package-0", 1000, 100000);
  write_domain(root, "intel-rapl:0:0", "core", 100, 100000);        // inside package-0
  write_domain(root, "intel-rapl:1", "psys", 5000, 100000);         // contains the packages
  write_domain(root, "intel-rapl-mmio:0", "package-0", 7, 100000);  // a duplicate
  auto meter = RaplMeter::open(root.file(""));
  ASSERT_NE(meter, nullptr);
  EXPECT_EQ(meter->domain_count(), 1u);

  set_energy(root, "intel-rapl:0", 2000);
  set_energy(root, "intel-rapl:0:0", 900);
  set_energy(root, "intel-rapl:1", 9000);
  set_energy(root, "intel-rapl-mmio:0", 2000);
  EXPECT_NEAR(meter->joules_total(), 1000e-6, 1e-12);
}

TEST(RaplMeter, RaplMeterIsAbsentWhenNoDomainIsReadable) {
  std::string why;
  EXPECT_EQ(RaplMeter::open("/nonexistent/calm/powercap", &why), nullptr);
  EXPECT_NE(why.find("intel-rapl"), std::string::npos) << why;

  TempDir root("calm-rapl");
  EXPECT_EQ(RaplMeter::open(root.file("")), nullptr);  // no domain at all
  // A domain whose counter cannot be read: a directory in place of the file
  // (chmod would not stop root, who runs the tests in some containers).
  fs::create_directories(root.file("intel-rapl:0/energy_uj"));
  write_bytes(root.file("intel-rapl:0/name"), "package-0\n");
  fs::create_directories(root.file("intel-rapl:1"));  // no energy_uj
  write_bytes(root.file("intel-rapl:1/name"), "package-1\n");
  EXPECT_EQ(RaplMeter::open(root.file("")), nullptr);
}

TEST(NvmlMeter, NvmlMeterIsAbsentWithoutTheLibrary) {
  std::string why;
  EXPECT_EQ(NvmlMeter::open(kNoSuchLibrary, &why), nullptr);
  EXPECT_NE(why.find(kNoSuchLibrary), std::string::npos) << why;

  // The real library: absent on a machine without a GPU, a working meter on
  // one with. Either way, no crash.
  auto meter = NvmlMeter::open(NvmlMeter::kDefaultLibrary, &why);
  if (meter == nullptr) {
    EXPECT_FALSE(why.empty());
  } else {
    EXPECT_EQ(meter->source(), "nvml");
    EXPECT_GT(meter->device_count(), 0u);
    double first = meter->joules_total();
    EXPECT_GE(first, 0.0);
    EXPECT_GE(meter->joules_total(), first);
  }
}

TEST(CpuTimeMeter, CpuTimeMeterGrowsWithWork) {
  CpuTimeMeter meter(10.0);
  EXPECT_EQ(meter.source(), "cpu-time-estimate");
  // Spin until 20 ms of CPU time (0.2 J at 10 W) have been counted; the
  // machine may be busy, so allow plenty of wall time.
  double previous = meter.joules_total();
  volatile uint64_t sink = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (previous < 0.2 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 100000; ++i) sink = sink + i;
    double now = meter.joules_total();
    ASSERT_GE(now, previous);  // never decreases
    previous = now;
  }
  EXPECT_GE(previous, 0.2);
}

TEST(CpuTimeMeter, CpuTimeMeterRejectsANegativePowerFigure) {
  EXPECT_THROW(CpuTimeMeter(-1.0), std::invalid_argument);
  EXPECT_THROW(CpuTimeMeter(std::nan("")), std::invalid_argument);
  EXPECT_DOUBLE_EQ(CpuTimeMeter().watts_per_core(), 15.0);
}

TEST(EnergyMeterFactory, MakeEnergyMeterFallsBackToTheCpuTimeEstimate) {
  TempDir root("calm-rapl");
  EnergyMeterOptions options;
  options.powercap_root = root.file("");
  options.nvml_library = kNoSuchLibrary;
  options.watts_per_core = 7;
  auto meter = make_energy_meter(options);
  ASSERT_NE(meter, nullptr);
  EXPECT_EQ(meter->source(), "cpu-time-estimate");
  EXPECT_DOUBLE_EQ(dynamic_cast<CpuTimeMeter&>(*meter).watts_per_core(), 7.0);
}

TEST(EnergyMeterFactory, MakeEnergyMeterPrefersRaplToTheEstimate) {
  TempDir root("calm-rapl");
  write_domain(root, "intel-rapl:0", "package-0", 1000, 10000);
  EnergyMeterOptions options;
  options.powercap_root = root.file("");
  options.nvml_library = kNoSuchLibrary;
  EXPECT_EQ(make_energy_meter(options)->source(), "rapl");
  options.prefer = "cpu-time";
  EXPECT_EQ(make_energy_meter(options)->source(), "cpu-time-estimate");
}

TEST(EnergyMeterFactory, MakeEnergyMeterRejectsAnUnavailableNamedMeter) {
  TempDir root("calm-rapl");
  EnergyMeterOptions options;
  options.powercap_root = root.file("");
  options.nvml_library = kNoSuchLibrary;
  auto message_of = [&](const std::string& prefer) -> std::string {
    options.prefer = prefer;
    try {
      make_energy_meter(options);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of("rapl").find("intel-rapl"), std::string::npos);
  EXPECT_NE(message_of("nvml").find(kNoSuchLibrary), std::string::npos);
  EXPECT_NE(message_of("joulemeter").find("unknown"), std::string::npos);
}

TEST(EnergyAttributor, EnergyAttributorSplitsOverlappingRequestsEvenly) {
  FakeMeter meter;
  EnergyAttributor attributor(meter);
  EXPECT_EQ(attributor.source(), "fake");
  uint64_t a = attributor.begin();
  uint64_t b = attributor.begin();
  meter.add(10);
  EXPECT_DOUBLE_EQ(attributor.end(a), 5);
  EXPECT_DOUBLE_EQ(attributor.end(b), 5);

  // Partly overlapping: a alone 4 J, both 6 J, b alone 2 J.
  a = attributor.begin();
  meter.add(4);
  b = attributor.begin();
  meter.add(6);
  EXPECT_DOUBLE_EQ(attributor.end(a), 4 + 3);
  meter.add(2);
  EXPECT_DOUBLE_EQ(attributor.end(b), 3 + 2);
  EXPECT_EQ(attributor.in_flight(), 0);
}

TEST(EnergyAttributor, EnergyAttributorGivesAWholeIntervalToALoneRequest) {
  FakeMeter meter;
  meter.add(100);  // before the attributor: no one's
  EnergyAttributor attributor(meter);
  meter.add(20);  // idle: no one's
  uint64_t token = attributor.begin();
  meter.add(30);
  EXPECT_DOUBLE_EQ(attributor.end(token), 30);
  meter.add(5);  // idle again
  token = attributor.begin();
  EXPECT_DOUBLE_EQ(attributor.end(token), 0);
}

TEST(EnergyAttributor, EnergyAttributorSumsToTheMeteredTotal) {
  // Random interleavings: the shares add up to the energy metered while any
  // request was in flight.
  FakeMeter meter;
  EnergyAttributor attributor(meter);
  std::mt19937 rng(42);
  std::vector<uint64_t> open;
  double busy_joules = 0, attributed = 0;
  for (int step = 0; step < 2000; ++step) {
    double joules = std::uniform_real_distribution<double>(0, 3)(rng);
    meter.add(joules);
    if (!open.empty()) busy_joules += joules;
    if (open.empty() || (open.size() < 8 && rng() % 2 == 0)) {
      open.push_back(attributor.begin());
    } else {
      size_t i = rng() % open.size();
      double share = attributor.end(open[i]);
      EXPECT_GE(share, 0);
      attributed += share;
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  for (uint64_t token : open) attributed += attributor.end(token);
  EXPECT_NEAR(attributed, busy_joules, 1e-9 * busy_joules);
}

TEST(EnergyAttributor, EnergyAttributorSumsToTheMeteredTotalAcrossThreads) {
  // Each thread adds energy only while its own request is in flight, so all
  // of it is attributed to someone.
  FakeMeter meter;
  EnergyAttributor attributor(meter);
  constexpr int kThreads = 4, kRequests = 500;
  std::vector<double> attributed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequests; ++r) {
        uint64_t token = attributor.begin();
        meter.add(1);
        attributed[t] += attributor.end(token);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  double sum = 0;
  for (double a : attributed) sum += a;
  EXPECT_NEAR(sum, kThreads * kRequests, 1e-6);
  EXPECT_EQ(attributor.in_flight(), 0);
}

TEST(EnergyAttributor, EnergyAttributorRejectsATokenNotInFlight) {
  FakeMeter meter;
  EnergyAttributor attributor(meter);
  EXPECT_THROW(attributor.end(7), std::invalid_argument);
  uint64_t token = attributor.begin();
  attributor.end(token);
  EXPECT_THROW(attributor.end(token), std::invalid_argument);
}

}  // namespace
}  // namespace calm
