#include "bench/bench_report.h"

#include <cstdio>

namespace calm {
namespace {

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string table_header() {
  return "| label | requests | errors | mean ms | p50 ms | p95 ms | p99 ms | TTFT mean ms | req/s "
         "|\n|---|---|---|---|---|---|---|---|---|\n";
}

std::string table_row(const std::string& label, const BenchStats& s) {
  return "| " + label + " | " + std::to_string(s.requests) + " | " + std::to_string(s.errors) +
         " | " + fixed(s.latency_mean_ms, 1) + " | " + fixed(s.latency_p50_ms, 1) + " | " +
         fixed(s.latency_p95_ms, 1) + " | " + fixed(s.latency_p99_ms, 1) + " | " +
         fixed(s.ttft_mean_ms, 1) + " | " + fixed(s.throughput_rps, 2) + " |\n";
}

nlohmann::json to_json(const RequestRecord& r) {
  return {{"index", r.index},
          {"t", r.t},
          {"sent_ms", r.sent_ms},
          {"model", r.model},
          {"served_model", r.served_model},
          {"domain", r.domain},
          {"status", r.status},
          {"error", r.error},
          {"latency_ms", r.latency_ms},
          {"ttft_ms", r.ttft_ms ? nlohmann::json(*r.ttft_ms) : nlohmann::json(nullptr)},
          {"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"response_id", r.response_id},
          {"cache", r.cache},
          {"text", r.text}};
}

void write_csv(std::ostream& out, const std::vector<RequestRecord>& records) {
  out << "index,t_s,sent_ms,model,served_model,domain,status,latency_ms,ttft_ms,prompt_tokens,"
         "completion_tokens,error\n";
  for (const RequestRecord& r : records) {
    out << r.index << ',' << fixed(r.t, 6) << ',' << fixed(r.sent_ms, 3) << ','
        << csv_field(r.model) << ',' << csv_field(r.served_model) << ',' << csv_field(r.domain)
        << ',' << r.status << ',' << fixed(r.latency_ms, 3) << ','
        << (r.ttft_ms ? fixed(*r.ttft_ms, 3) : "") << ',' << r.prompt_tokens << ','
        << r.completion_tokens << ',' << csv_field(r.error) << '\n';
  }
}

}  // namespace calm
