// SseParser: see sse_parser.h. Line and field rules follow the WHATWG HTML
// spec, section "Interpreting an event stream".
#include "engines/sse_parser.h"

namespace calm {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

}  // namespace

const std::string* SseEvent::extra(std::string_view name) const {
  for (const auto& [field, value] : extra_fields) {
    if (field == name) return &value;
  }
  return nullptr;
}

SseParser::SseParser(size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
  std::vector<SseEvent> out;
  size_t pos = 0;
  while (pos < bytes.size() && !overflowed_) {
    // A '\n' right after a line-ending '\r' is the second half of a CRLF,
    // even when the network split the two into different reads.
    if (after_cr_) {
      after_cr_ = false;
      if (bytes[pos] == '\n') {
        ++pos;
        continue;
      }
    }
    const size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      append_to_line(bytes.substr(pos));
      break;
    }
    append_to_line(bytes.substr(pos, end - pos));
    if (overflowed_) break;
    after_cr_ = bytes[end] == '\r';
    process_line(out);
    pos = end + 1;
  }
  return out;
}

std::vector<SseEvent> SseParser::finish() {
  std::vector<SseEvent> out;
  if (!overflowed_) {
    if (!line_.empty()) process_line(out);
    dispatch(out);
  }
  *this = SseParser(max_event_bytes_);
  return out;
}

void SseParser::append_to_line(std::string_view bytes) {
  if (line_.size() + event_bytes_ + bytes.size() > max_event_bytes_) {
    overflowed_ = true;
    line_.clear();
    data_.clear();
    event_ = SseEvent{};
    return;
  }
  line_.append(bytes);
}

void SseParser::process_line(std::vector<SseEvent>& out) {
  std::string_view line = line_;
  if (first_line_) {
    first_line_ = false;
    if (line.substr(0, kByteOrderMark.size()) == kByteOrderMark) {
      line.remove_prefix(kByteOrderMark.size());
    }
  }
  event_bytes_ += line.size();

  if (line.empty()) {
    dispatch(out);
  } else if (line.front() != ':') {  // a leading ':' marks a comment (keep-alive)
    const size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      data_.append(value);
      data_.push_back('\n');
    } else if (field == "event") {
      event_.type = value;
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) event_.id = value;
    } else if (field == "retry") {
      // Reconnection delay: meaningless for a single POST response.
    } else {
      event_.extra_fields.emplace_back(field, value);
    }
  }
  line_.clear();
}

void SseParser::dispatch(std::vector<SseEvent>& out) {
  // The spec dispatches only when the data buffer is non-empty; we also
  // dispatch for extra fields so llama-server's "error:" lines surface.
  if (!data_.empty() || !event_.extra_fields.empty()) {
    if (!data_.empty()) data_.pop_back();  // the newline after the last data line
    event_.data = std::move(data_);
    out.push_back(std::move(event_));
  }
  event_ = SseEvent{};
  data_.clear();
  event_bytes_ = 0;
}

}  // namespace calm
