// What the Monitor records of one finished request: the M of MAPE-K.
#pragma once

#include <cstdint>
#include <string>

namespace calm {

struct RequestMetrics {
  std::string response_id;
  std::string model;
  std::string routed_by;  // the router's reason (x-calm-route)
  double queue_ms = 0;    // arrival in the scheduler until its turn (incl. a load)
  double ttft_ms = 0;     // engine: start of generation until the first token
  double latency_ms = 0;  // arrival at calm until the answer ended
  int tokens_in = 0;
  int tokens_out = 0;
  double decode_tps = 0;  // tokens_out / (generation time - ttft)
  double energy_j = 0;
  std::string energy_source;  // which meter: "rapl", "nvml", "cpu-time-estimate"
  double memory_bytes = 0;    // what its model holds (the cache's measured charge)
  double confidence = 1;      // geometric mean token probability, [0, 1]
  bool cancelled = false;     // the client left: says nothing about the model
};

}  // namespace calm
