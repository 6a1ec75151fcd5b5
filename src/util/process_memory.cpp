#include "util/process_memory.h"

#include <malloc.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace calm {

uint64_t process_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t process_peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // in kB
  }
  return 0;
}

void return_large_frees_to_the_kernel() {
  // A fixed threshold turns off glibc's dynamic adjustment; 1 MiB keeps
  // small allocations in the heap as usual.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

void release_free_memory() {
  malloc_trim(0);
}

}  // namespace calm
