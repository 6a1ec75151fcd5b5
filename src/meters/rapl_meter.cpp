#include "meters/rapl_meter.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>

namespace calm {
namespace {

// A non-negative integer from the first line of a sysfs file; nullopt if the
// file is missing, unreadable or holds something else.
std::optional<uint64_t> read_uint(const std::filesystem::path& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

std::string read_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

RaplMeter::RaplMeter(std::string root) : root_(std::move(root)) {
  namespace fs = std::filesystem;
  static const std::regex kPackageDir(R"(intel-rapl:\d+)");  // not intel-rapl:N:M
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    if (std::regex_match(it->path().filename().string(), kPackageDir)) dirs.push_back(it->path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    // No name file: assume a package. A named non-package (psys) contains the
    // packages and would count them twice.
    if (fs::exists(dir / "name", ec) && read_line(dir / "name").rfind("package", 0) != 0) continue;
    std::optional<uint64_t> now = read_uint(dir / "energy_uj");
    if (!now) continue;  // often root-only
    Domain domain;
    domain.energy_path = (dir / "energy_uj").string();
    domain.max_range_uj = read_uint(dir / "max_energy_range_uj").value_or(0);
    domain.last_uj = *now;
    domains_.push_back(std::move(domain));
  }
}

std::unique_ptr<RaplMeter> RaplMeter::open(const std::string& root, std::string* why_not) {
  auto meter = std::make_unique<RaplMeter>(root);
  if (meter->domain_count() > 0) return meter;
  if (why_not != nullptr) {
    *why_not = "no readable package domain " + root +
               "/intel-rapl:N/energy_uj (no RAPL, or the files are readable by root only)";
  }
  return nullptr;
}

double RaplMeter::joules_total() {
  std::lock_guard lock(mutex_);
  for (Domain& domain : domains_) {
    std::optional<uint64_t> now = read_uint(domain.energy_path);
    if (!now) continue;
    if (*now >= domain.last_uj) {
      total_uj_ += *now - domain.last_uj;
    } else if (domain.max_range_uj > domain.last_uj) {
      total_uj_ += (domain.max_range_uj - domain.last_uj) + *now;  // wrapped around
    } else {
      total_uj_ += *now;  // wrapped, range unknown: count from 0
    }
    domain.last_uj = *now;
  }
  return static_cast<double>(total_uj_) * 1e-6;
}

}  // namespace calm
