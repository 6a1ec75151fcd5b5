// The memory this process holds, as the kernel counts it.
#pragma once

#include <cstdint>

namespace calm {

// Resident set size now (/proc/self/statm), in bytes; 0 if unreadable.
uint64_t process_rss_bytes();
// The highest resident set size so far (VmHWM in /proc/self/status); 0 if unreadable.
uint64_t process_peak_rss_bytes();

// Makes freed model memory go back to the kernel, so that RSS falls when a
// model unloads and rises by what the next load really takes: glibc would
// otherwise raise its mmap threshold after the first large free and keep
// later model buffers in the heap, where freed pages are reused rather than
// returned and RSS deltas stop meaning anything. Call once at start.
void return_large_frees_to_the_kernel();

// Gives memory that is free inside every malloc arena back to the kernel
// (malloc_trim). Call after freeing something big.
void release_free_memory();

}  // namespace calm
