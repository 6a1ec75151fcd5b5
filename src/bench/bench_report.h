// How `calm bench run` writes what it measured: a Markdown table row for the
// terminal (pasteable into bench/RESULTS.md), the per-request records as JSON
// and as CSV for plotting. Kept apart from the measuring so each output is
// easy to test and to change.
//
// Free functions over values: safe from any thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "bench/bench_stats.h"
#include "bench/replayer.h"

namespace calm {

// The header and separator lines of the results table.
std::string table_header();
// One row: label, requests, errors, mean/p50/p95/p99 latency (ms), mean TTFT
// (ms), throughput (req/s).
std::string table_row(const std::string& label, const BenchStats& stats);

// A record as a JSON object (ttft_ms is null when no text came).
nlohmann::json to_json(const RequestRecord& record);

// One line per record, with a header line. Columns: index, t_s, sent_ms,
// model, served_model, domain, status, latency_ms, ttft_ms (empty when
// unset), prompt_tokens, completion_tokens, error. The answer text is left
// out (it is in the JSON). Fields are quoted per RFC 4180 when needed.
void write_csv(std::ostream& out, const std::vector<RequestRecord>& records);

}  // namespace calm
