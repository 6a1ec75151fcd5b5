// The one reader of OpenAI-style streamed answers, shared by RemoteEngine
// (which relays a remote server's stream) and the bench Replayer (which
// measures calm's or another server's). It turns the bytes of a
// `stream: true` answer of /v1/chat/completions or /v1/completions into text
// deltas, usage, finish_reason and errors.
//
//   bytes ──SseParser──► events ──► data: {chunk}   -> on_text(delta), usage, finish_reason
//                                   data: [DONE]    -> done(); nothing after it counts
//                                   data: {"error"} -> problem() (kError), reading stops
//                                   event: error / a bare "error:" line (llama-server)
//                                                   -> problem() (kError), reading stops
//                                   data: not JSON  -> problem() (kMalformed), reading stops
//
// Dialects covered: OpenAI, llama-server (bare "error:" lines, role-only
// first chunk with null content), vLLM, Ollama's /v1 and calm. Text of chat
// chunks is choices[0].delta.content, of completions choices[0].text; a whole
// non-streamed answer (a server that ignored `stream`) is read with
// read_whole_answer(), from choices[0].message.content or .text. Invalid
// UTF-8 in events is replaced by U+FFFD before parsing, so text is always
// valid UTF-8.
//
// Not thread-safe: one reader per exchange, used by the thread reading it.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "engines/sse_parser.h"

namespace calm {

// What an upstream said went wrong, in any of the dialects:
//   OpenAI, llama-server, vLLM: {"error": {"message": "...", "type": ..., "code": ...}}
//   Ollama:                     {"error": "..."}
//   vLLM (older), FastAPI:      {"message": "..."} / {"detail": "..."}
//   anything else:              the text itself, bounded
struct UpstreamProblem {
  int status = 0;  // the HTTP status given, else the error object's "code" (0: none)
  std::string message;
  std::string type;  // the error object's "type", e.g. exceed_context_size_error
};

// Reads an error body or an error event's payload. `status` is the HTTP
// status when known (0 mid-stream: then the object's "code" stands in).
UpstreamProblem parse_upstream_problem(std::string_view body, int status = 0);

// Upstream bytes quoted in a message: at most `limit` bytes, valid UTF-8,
// "..." when cut.
std::string quote_upstream(std::string_view text, size_t limit = 300);

class OpenAiStreamReader {
 public:
  struct Problem {
    enum class Kind {
      kError,      // the upstream reported an error (see `upstream`)
      kMalformed,  // an event or answer that is not what the protocol says
      kTooLarge,   // an event or a whole answer over the size bound
    };
    Kind kind = Kind::kError;
    std::string message;       // for kMalformed/kTooLarge: what was wrong, quoting the bytes
    UpstreamProblem upstream;  // for kError
  };

  // Called with each non-empty piece of text as it arrives.
  using TextCallback = std::function<void(const std::string& text)>;

  explicit OpenAiStreamReader(TextCallback on_text = {},
                              size_t max_event_bytes = SseParser::kDefaultMaxEventBytes);

  // Consumes bytes of an event stream. Returns false once reading should stop
  // (a problem was found); later calls do nothing.
  bool feed(std::string_view bytes);
  // The stream ended: delivers an event left without its blank line.
  void finish();
  // A whole answer in one JSON body. Marks the stream done, with
  // finish_reason "stop" when the body gave none.
  void read_whole_answer(std::string_view body);

  // True once [DONE] came (or a whole answer was read).
  bool done() const { return done_; }
  // The upstream said the generation is over: [DONE] or a finish_reason.
  bool answered() const { return done_ || !finish_reason_.empty(); }
  const std::optional<Problem>& problem() const { return problem_; }

  const std::string& text() const { return text_; }
  const std::string& finish_reason() const { return finish_reason_; }  // "" until given
  bool usage_seen() const { return usage_seen_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }
  int text_chunks() const { return text_chunks_; }        // chunks that carried text
  const std::string& response_id() const { return id_; }  // the first chunk's "id"
  const std::string& model() const { return model_; }     // the first chunk's "model"

 private:
  void on_event(const SseEvent& event);
  void take_chunk(const nlohmann::json& chunk, const char* choice_key);
  void fail(Problem::Kind kind, std::string message);
  void fail_upstream(UpstreamProblem problem);

  TextCallback on_text_;
  SseParser parser_;
  std::optional<Problem> problem_;
  bool done_ = false;
  std::string text_;
  std::string finish_reason_;
  bool usage_seen_ = false;
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
  int text_chunks_ = 0;
  std::string id_;
  std::string model_;
};

}  // namespace calm
