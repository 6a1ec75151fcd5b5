// Feeds: the bytes a remote backend answers to a `stream: true` request, as
// RemoteEngine and the bench replayer read them: SseParser
// (engines/sse_parser.h) and OpenAiStreamReader (engines/openai_stream.h),
// each once with the whole input in one read and once cut into reads of
// 1 to 64 bytes (the cuts follow from the input, so a finding replays), with
// the default event bound and with a small one; then the same bytes as a
// whole non-streamed answer (read_whole_answer) and as an error body
// (parse_upstream_problem).
// Nothing here is documented to throw, so nothing is caught. A finding: an
// exception, a crash, a sanitizer report, a hang, or a broken promise of the
// headers: the events or the reader's results differ between the whole input
// and the same input cut into pieces, or the text read is not valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engines/openai_stream.h"
#include "engines/sse_parser.h"
#include "util/utf8.h"

namespace {

using calm::OpenAiStreamReader;
using calm::SseEvent;
using calm::SseParser;

// Read lengths of 1 to 64 bytes, drawn from a generator seeded by the input.
std::vector<std::string_view> cut(std::string_view bytes) {
  uint64_t state = 0x9e3779b97f4a7c15ull ^ bytes.size();
  for (unsigned char c : bytes.substr(0, 8)) state = state * 31 + c;
  std::vector<std::string_view> pieces;
  for (size_t pos = 0; pos < bytes.size();) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const size_t n = 1 + (state >> 58);  // 1..64
    pieces.push_back(bytes.substr(pos, n));
    pos += n;
  }
  return pieces;
}

bool same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].data != b[i].data || a[i].id != b[i].id ||
        a[i].extra_fields != b[i].extra_fields) {
      return false;
    }
  }
  return true;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void sse_whole_and_cut(std::string_view bytes, size_t limit) {
  SseParser whole(limit);
  std::vector<SseEvent> a = whole.feed(bytes);
  const bool whole_overflowed = whole.overflowed();
  for (SseEvent& e : whole.finish()) a.push_back(std::move(e));

  SseParser pieces(limit);
  std::vector<SseEvent> b;
  for (std::string_view piece : cut(bytes)) {
    for (SseEvent& e : pieces.feed(piece)) b.push_back(std::move(e));
  }
  check(pieces.overflowed() == whole_overflowed);
  for (SseEvent& e : pieces.finish()) b.push_back(std::move(e));
  check(same(a, b));
}

struct Outcome {
  bool done, answered, usage_seen, problem;
  int kind, prompt_tokens, completion_tokens, text_chunks;
  std::string text, finish_reason, message, id, model;
  bool operator==(const Outcome&) const = default;
};

Outcome outcome_of(const OpenAiStreamReader& r) {
  const auto& p = r.problem();
  return {r.done(),
          r.answered(),
          r.usage_seen(),
          p.has_value(),
          p ? static_cast<int>(p->kind) : -1,
          r.prompt_tokens(),
          r.completion_tokens(),
          r.text_chunks(),
          r.text(),
          r.finish_reason(),
          p ? p->message : "",
          r.response_id(),
          r.model()};
}

void reader_whole_and_cut(std::string_view bytes, size_t limit) {
  std::string streamed;  // what on_text handed out, piece by piece
  OpenAiStreamReader whole([&](const std::string& text) { streamed += text; }, limit);
  if (whole.feed(bytes)) whole.finish();

  OpenAiStreamReader pieces({}, limit);
  bool reading = true;
  for (std::string_view piece : cut(bytes)) {
    if (!(reading = pieces.feed(piece))) break;
  }
  if (reading) pieces.finish();

  const Outcome a = outcome_of(whole);
  check(a == outcome_of(pieces));
  check(streamed == a.text);
  check(calm::repair_utf8(a.text) == a.text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  sse_whole_and_cut(bytes, SseParser::kDefaultMaxEventBytes);
  sse_whole_and_cut(bytes, 64);
  reader_whole_and_cut(bytes, SseParser::kDefaultMaxEventBytes);
  reader_whole_and_cut(bytes, 64);

  OpenAiStreamReader answer;
  answer.read_whole_answer(bytes);
  check(calm::repair_utf8(answer.text()) == answer.text());
  const calm::UpstreamProblem problem = calm::parse_upstream_problem(bytes, 500);
  check(!problem.message.empty());
  check(calm::repair_utf8(problem.message) == problem.message);
  calm::parse_upstream_problem(bytes, 0);
  return 0;
}
