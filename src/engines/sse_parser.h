// Incremental parser for server-sent events (the WHATWG "text/event-stream"
// format), as used by OpenAI-compatible servers for `stream: true`.
//
// Network reads cut the stream anywhere: inside a line, between the '\r' and
// '\n' of a CRLF, inside a UTF-8 character. The parser keeps the unfinished
// line between feed() calls and hands back only complete events, so callers
// can pass it whatever the socket gave them.
//
//   SseParser parser;
//   for (const SseEvent& event : parser.feed(chunk)) { ... }
//   for (const SseEvent& event : parser.finish()) { ... }  // at end of stream
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace calm {

struct SseEvent {
  std::string type;  // the "event:" field; empty means the default "message"
  std::string data;  // the "data:" lines joined with '\n' (no trailing newline)
  std::string id;    // the "id:" field given in this event, if any
  // Fields the SSE spec does not define, in order of arrival. The spec says to
  // ignore them, but llama-server reports a failure mid-stream as a bare
  // "error: {...}" line, and we must not lose that.
  std::vector<std::pair<std::string, std::string>> extra_fields;

  // The value of the first extra field with this name, or nullptr.
  const std::string* extra(std::string_view name) const;
};

// Not thread-safe; one parser per stream.
class SseParser {
 public:
  // Bound on the bytes of one unfinished line plus one unfinished event, so a
  // peer sending garbage without newlines cannot make us buffer without end.
  static constexpr size_t kDefaultMaxEventBytes = size_t{16} << 20;

  explicit SseParser(size_t max_event_bytes = kDefaultMaxEventBytes);

  // Consumes bytes and returns the events they complete, in order. After an
  // overflow it returns nothing and ignores all further input.
  std::vector<SseEvent> feed(std::string_view bytes);

  // The stream ended: returns the event in progress, if it has anything. The
  // spec would drop an event not followed by a blank line; we deliver it
  // because a peer that closes right after its last "data:" line meant it.
  // The parser is reset and may be reused afterwards.
  std::vector<SseEvent> finish();

  // True once an event or line exceeded max_event_bytes.
  bool overflowed() const { return overflowed_; }

 private:
  void append_to_line(std::string_view bytes);
  void process_line(std::vector<SseEvent>& out);
  void dispatch(std::vector<SseEvent>& out);

  size_t max_event_bytes_;
  std::string line_;        // the unfinished line
  SseEvent event_;          // the event in progress; data_ holds its data
  std::string data_;        // data lines, each followed by '\n' (spec's data buffer)
  size_t event_bytes_ = 0;  // bytes of the lines that make up event_ so far
  bool after_cr_ = false;   // the last byte seen ended a line with '\r'
  bool first_line_ = true;  // a byte order mark may start the stream
  bool overflowed_ = false;
};

}  // namespace calm
