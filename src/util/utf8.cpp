#include "util/utf8.h"

namespace calm {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the sequence a lead byte announces, 0 for a byte that cannot lead.
int sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // continuation byte, overlong lead C0/C1, or F5..FF
}

// Whether byte i (1-based within the sequence) is acceptable after lead.
// The second byte's range is narrower for some leads (RFC 3629 table).
bool valid_continuation(unsigned char lead, int i, unsigned char byte) {
  if (i == 1) {
    if (lead == 0xE0) return byte >= 0xA0 && byte <= 0xBF;  // no overlong
    if (lead == 0xED) return byte >= 0x80 && byte <= 0x9F;  // no surrogates
    if (lead == 0xF0) return byte >= 0x90 && byte <= 0xBF;  // no overlong
    if (lead == 0xF4) return byte >= 0x80 && byte <= 0x8F;  // <= U+10FFFF
  }
  return byte >= 0x80 && byte <= 0xBF;
}

enum class Scan { kComplete, kInvalid, kTruncated };

// Looks at the sequence starting at data[0]; sets length to the number of
// bytes consumed (the whole character, or the bad prefix to replace).
Scan scan_one(std::string_view data, size_t& length) {
  const auto lead = static_cast<unsigned char>(data[0]);
  const int need = sequence_length(lead);
  if (need == 0) {
    length = 1;
    return Scan::kInvalid;
  }
  for (int i = 1; i < need; ++i) {
    if (static_cast<size_t>(i) >= data.size()) {
      length = data.size();
      return Scan::kTruncated;
    }
    if (!valid_continuation(lead, i, static_cast<unsigned char>(data[i]))) {
      length = static_cast<size_t>(i);  // replace the bad prefix, rescan from here
      return Scan::kInvalid;
    }
  }
  length = static_cast<size_t>(need);
  return Scan::kComplete;
}

}  // namespace

std::string Utf8Repairer::push(std::string_view bytes) {
  std::string data = std::move(pending_);
  pending_.clear();
  data.append(bytes);

  std::string out;
  out.reserve(data.size());
  size_t pos = 0;
  while (pos < data.size()) {
    size_t length = 0;
    switch (scan_one(std::string_view(data).substr(pos), length)) {
      case Scan::kComplete:
        out.append(data, pos, length);
        break;
      case Scan::kInvalid:
        out.append(kReplacement);
        break;
      case Scan::kTruncated:
        pending_.assign(data, pos, length);
        break;
    }
    pos += length;
  }
  return out;
}

std::string Utf8Repairer::flush() {
  if (pending_.empty()) return {};
  pending_.clear();
  return std::string(kReplacement);
}

std::string repair_utf8(std::string_view bytes) {
  Utf8Repairer repairer;
  std::string out = repairer.push(bytes);
  out += repairer.flush();
  return out;
}

bool is_valid_utf8(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t length = 0;
    if (scan_one(bytes.substr(pos), length) != Scan::kComplete) return false;
    pos += length;
  }
  return true;
}

}  // namespace calm
