// RemoteReply and the request body: see remote_exchange.h.
#include "engines/remote_exchange.h"

#include <charconv>
#include <system_error>
#include <utility>

namespace calm {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Kind = EngineError::Kind;

constexpr size_t kMaxErrorBody = size_t{64} << 10;  // what we keep of an error answer
constexpr size_t kMaxJsonBody = size_t{16} << 20;   // a whole non-streamed answer

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_success(int status) {
  return status >= 200 && status < 300;
}

// 0.8f widened to double is 0.800000011920929; send the float's shortest
// decimal form instead so upstream logs and request echoes read as given.
double as_decimal(float value) {
  char buffer[32];
  const auto printed = std::to_chars(buffer, buffer + sizeof buffer, value);
  double out = value;
  if (printed.ec == std::errc()) std::from_chars(buffer, printed.ptr, out);
  return out;
}

// llama-server: "the request exceeds the available context size" (type
// exceed_context_size_error); vLLM: "This model's maximum context length is ...".
bool is_context_overflow(const UpstreamProblem& problem) {
  if (problem.type == "exceed_context_size_error") return true;
  const std::string message = lowercase(problem.message);
  return message.find("context") != std::string::npos &&
         (message.find("exceed") != std::string::npos ||
          message.find("maximum context length") != std::string::npos);
}

}  // namespace

json remote_request_body(const GenerationRequest& request, const std::string& model) {
  json body = json::object();
  body["model"] = model;
  if (request.is_chat()) {
    json messages = json::array();
    for (const ChatMessage& message : request.messages) {
      messages.push_back({{"role", message.role}, {"content", message.content}});
    }
    body["messages"] = std::move(messages);
  } else {
    body["prompt"] = *request.prompt;
  }
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};

  const SamplingParams& sampling = request.sampling;
  body["temperature"] = as_decimal(sampling.temperature);
  body["top_p"] = as_decimal(sampling.top_p);
  // Optional fields go out only when set: a missing seed means "random"
  // everywhere, and a top_k of 0 is not portable (older vLLM rejects it and
  // wants -1). The price: with top_k 0 ("disabled") the upstream applies its
  // own default instead (llama-server: 40).
  if (sampling.top_k > 0) body["top_k"] = sampling.top_k;
  if (sampling.seed) body["seed"] = *sampling.seed;
  body["max_tokens"] = sampling.max_tokens;
  if (!sampling.stop.empty()) body["stop"] = sampling.stop;
  if (sampling.ignore_eos) body["ignore_eos"] = true;  // llama-server and vLLM know it
  return body;
}

EngineError upstream_engine_error(const UpstreamProblem& problem, const std::string& who,
                                  bool in_stream) {
  const std::string code = problem.status > 0 ? std::to_string(problem.status) : "";
  const std::string message =
      who + ": upstream " +
      (in_stream ? "reported an error mid-stream" + (code.empty() ? "" : " (code " + code + ")")
                 : "answered HTTP " + code) +
      ": " + problem.message;
  if (problem.status == 503) return EngineError(Kind::kUnavailable, message);
  if (problem.status >= 400 && problem.status < 500 && is_context_overflow(problem)) {
    return EngineError(Kind::kContextOverflow, message);
  }
  return EngineError(Kind::kUpstream, message);
}

std::string transport_error_text(httplib::Error error, std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds read_timeout, long tls_verify) {
  std::string hint;
  switch (error) {
    case httplib::Error::Connection:
      hint = "cannot connect";
      break;
    case httplib::Error::ConnectionTimeout:
      hint = "no connection within " + std::to_string(connect_timeout.count()) + " ms";
      break;
    case httplib::Error::Read:
      hint = "connection lost, or no data within the read timeout of " +
             std::to_string(read_timeout.count()) + " ms";
      break;
    case httplib::Error::Write:
      hint = "connection lost while sending the request";
      break;
    case httplib::Error::SSLConnection:
      hint = "TLS handshake failed (is it an https:// server?)";
      break;
    case httplib::Error::SSLLoadingCerts:
      hint = "cannot load the CA certificates (check ca_file)";
      break;
    case httplib::Error::SSLServerVerification:
      hint = "the server's TLS certificate failed verification";
      // OpenSSL's X509_V_ERR_* code: 18 self-signed, 19 self-signed CA in
      // chain, 20 unknown issuer, 10 expired. httplib reports a chain that
      // verified but does not name the host with code 0.
      hint += tls_verify != 0 ? " (OpenSSL verify error " + std::to_string(tls_verify) + ")"
                              : " (it does not name this host)";
      hint += "; give its CA as ca_file, or set tls_verify: false for a test server";
      break;
    default:
      hint = "request failed";
      break;
  }
  return hint + " (httplib error: " + httplib::to_string(error) + ")";
}

void deliver(GenerationStream& stream, RemoteOutcome outcome) {
  if (auto* result = std::get_if<GenerationResult>(&outcome)) {
    stream.finish(std::move(*result));
  } else {
    stream.fail(std::move(std::get<EngineError>(outcome)));
  }
}

RemoteReply::RemoteReply(GenerationStream& stream, Clock::time_point start, std::string who)
    : stream_(stream),
      start_(start),
      who_(std::move(who)),
      reader_([this](const std::string& piece) {
        if (reader_.text_chunks() == 1) first_token_ms_ = ms_since(start_);
        stream_.push_delta(piece);
      }) {}

void RemoteReply::on_headers(int status, const std::string& content_type) {
  status_ = status;
  sse_ =
      is_success(status) && lowercase(content_type).find("text/event-stream") != std::string::npos;
}

bool RemoteReply::on_body(std::string_view bytes) {
  if (error_) return false;
  if (!sse_) return keep_body(bytes);
  return reader_.feed(bytes);
}

bool RemoteReply::keep_body(std::string_view bytes) {
  const size_t limit = is_success(status_) ? kMaxJsonBody : kMaxErrorBody;
  if (body_.size() + bytes.size() <= limit) {
    body_.append(bytes);
  } else if (is_success(status_)) {
    error_ = EngineError(Kind::kUpstream, who_ + ": upstream answer larger than " +
                                              std::to_string(limit) + " bytes");
    return false;
  }
  return true;  // an error body is cut, but read to the end to keep the status
}

RemoteOutcome RemoteReply::on_end() {
  if (!is_success(status_)) {
    return upstream_engine_error(parse_upstream_problem(body_, status_), who_, false);
  }
  if (sse_) {
    reader_.finish();
  } else if (!error_) {
    // A 2xx answer that is not an event stream: a server that ignored
    // `stream: true` and sent the whole completion as one JSON object.
    reader_.read_whole_answer(body_);
  }
  if (auto failure = error()) return std::move(*failure);
  if (!answered()) {
    return EngineError(Kind::kUpstream, who_ +
                                            ": upstream closed the stream before it "
                                            "finished (no finish_reason, no [DONE])");
  }
  return result(finish_reason());
}

std::string RemoteReply::finish_reason() const {
  return reader_.finish_reason().empty() ? "stop" : reader_.finish_reason();
}

std::optional<EngineError> RemoteReply::error() const {
  if (error_) return error_;
  const auto& problem = reader_.problem();
  if (!problem) return std::nullopt;
  switch (problem->kind) {
    case OpenAiStreamReader::Problem::Kind::kError:
      return upstream_engine_error(problem->upstream, who_, true);
    case OpenAiStreamReader::Problem::Kind::kMalformed:
      return EngineError(Kind::kUpstream,
                         who_ + ": malformed answer from upstream: " + problem->message);
    case OpenAiStreamReader::Problem::Kind::kTooLarge:
      break;
  }
  return EngineError(Kind::kUpstream, who_ + ": upstream sent an event larger than " +
                                          std::to_string(SseParser::kDefaultMaxEventBytes) +
                                          " bytes");
}

GenerationResult RemoteReply::result(const std::string& finish_reason) const {
  GenerationResult result;
  result.text = reader_.text();
  result.finish_reason = finish_reason;
  if (reader_.usage_seen()) {
    result.prompt_tokens = reader_.prompt_tokens();
    result.completion_tokens = reader_.completion_tokens();
  } else {
    // The upstream sent no usage (an old server ignoring stream_options, or
    // a cancelled stream). Servers stream about one token per chunk, so the
    // number of text chunks is the best estimate we have; the prompt size is
    // unknown and reported as 0.
    result.prompt_tokens = 0;
    result.completion_tokens = reader_.text_chunks();
  }
  result.time_to_first_token_ms = first_token_ms_;
  result.total_ms = ms_since(start_);
  return result;
}

}  // namespace calm
