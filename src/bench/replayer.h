// Replays a workload against an OpenAI-compatible server (calm,
// llama-server, vLLM, ...) the way real clients would load it, and records
// what each request got. This is the measuring half of `calm bench run`;
// bench_stats.h summarises the records.
//
// Open loop: request i is due at start + t_i whether or not earlier requests
// have finished, so a slow server builds a queue instead of slowing the
// arrivals down (a closed loop would hide exactly the overload we want to
// see). At most `concurrency` requests are in flight: a due request waits for
// a free worker, and since latency is measured from its scheduled arrival
// that wait counts in its latency, as it would for a real client.
//
// Streams are read by engines/openai_stream.h, as RemoteEngine reads them.
// Every request streams (`stream: true`, `stream_options.include_usage`),
// with `temperature: 0`, and `ignore_eos: true` when asked. Timings:
//   latency_ms = end of stream - scheduled arrival
//   ttft_ms    = first SSE `data:` event carrying non-empty text (chat
//                `delta.content`, completions `text`) - scheduled arrival;
//                the role-only first chunk of a chat stream does not count.
//                Unset when no text came. For a server that ignores `stream`
//                and answers one JSON body, the body's arrival.
// A request never throws: a refused connection, a timeout, a broken or
// truncated stream, or an error event mid-stream are recorded with status 0
// and the error text; a non-2xx answer with its status and body.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/workload.h"

namespace calm {

// What one replayed request got.
struct RequestRecord {
  size_t index = 0;          // position in the (sorted) workload
  double t = 0;              // scheduled arrival, seconds from the start
  double sent_ms = 0;        // when it was actually sent, ms from the start
  std::string model;         // the model asked for
  std::string served_model;  // header x-calm-model if present, else the answer's model
  std::string domain;        // from the workload
  // HTTP status when the server answered in full or refused with a non-2xx
  // status; 0 when there is no complete answer (no connection, timeout,
  // broken or truncated stream, error event inside a 200 stream).
  int status = 0;
  std::string error;              // empty when the request succeeded
  double latency_ms = 0;          // scheduled arrival -> end of stream
  std::optional<double> ttft_ms;  // scheduled arrival -> first text
  int prompt_tokens = 0;          // from usage; 0 when the server sent none
  int completion_tokens = 0;
  std::string text;  // the answer (invalid UTF-8 replaced)
  // The OpenAI response id ("chatcmpl-..."), from the stream chunks' "id"
  // (or the whole answer's); empty when none came. It joins the record to
  // what the server stored about the request (calm's knowledge store).
  std::string response_id;
  // Header x-calm-cache: "hit" when the model was resident when the request
  // was admitted, "miss" when it had to be loaded; empty for a server that
  // does not send it.
  std::string cache;

  bool ok() const { return status >= 200 && status < 300 && error.empty(); }
};

struct ReplayOptions {
  std::string base_url;                // http[s]://host:port[/prefix]; a trailing /v1 is dropped
  bool tls_verify = true;              // https: verify the server's certificate and host name
  std::string ca_file;                 // https: CAs to trust instead of the system's
  int concurrency = 8;                 // most requests in flight
  std::string default_model = "auto";  // for requests that name none
  bool ignore_eos = false;             // send ignore_eos: true (exactly max_tokens tokens)
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds read_timeout{600};
  // Called after each request ends, from a worker thread; calls are
  // serialised (never two at once). `done` and `errors` count finished
  // requests so far. Must not call back into the Replayer.
  std::function<void(const RequestRecord&, size_t done, size_t errors)> on_record;
};

struct ReplayResult {
  std::vector<RequestRecord> records;             // in workload order
  std::chrono::steady_clock::time_point started;  // t = 0
  double wall_s = 0;                              // from t = 0 to the end of the last request
};

// A base URL split into what httplib needs.
struct BaseUrl {
  std::string host;
  int port = 80;
  std::string prefix;  // path before /v1/..., no trailing '/'
  bool tls = false;    // https://
};

// Parses http[s]://host[:port][/prefix] with util/url.h; throws
// std::invalid_argument (a UrlError) saying what is wrong.
BaseUrl parse_bench_url(const std::string& url);

class Replayer {
 public:
  // Throws std::invalid_argument for a bad URL or a concurrency < 1.
  explicit Replayer(ReplayOptions options);

  // Replays the workload (sorted by t, as load_workload returns it) and
  // returns when every request has ended. Blocks the calling thread; runs
  // min(concurrency, requests) worker threads, each with its own keep-alive
  // connection. Not reentrant: one run() at a time per Replayer.
  ReplayResult run(const std::vector<WorkloadRequest>& workload);

  // GET {base}/v1/calm/state: the JSON object when the server is calm,
  // nullopt for any other answer or none. Thread-safe (own connection).
  std::optional<nlohmann::json> fetch_calm_state() const;

  // The JSON body sent for a request. Thread-safe.
  nlohmann::json request_body(const WorkloadRequest& request) const;

 private:
  ReplayOptions options_;
  BaseUrl url_;
};

}  // namespace calm
