// UTF-8 repair for model output.
//
// A model emits bytes, not characters: one token may hold half of a
// multi-byte character, and random-weight or tiny models emit byte sequences
// that are not UTF-8 at all. JSON must carry valid UTF-8, so every piece of
// generated text passes through Utf8Repairer before it leaves an engine.
#pragma once

#include <string>
#include <string_view>

namespace calm {

// Incremental repair. Not thread-safe; one per generation.
//   push(bytes) returns the longest valid text that can be released now:
//   complete characters pass, invalid bytes become U+FFFD, and an incomplete
//   character at the end is held back until the next push (so a character is
//   never split across two stream chunks).
//   flush() releases what is held back (as U+FFFD: the stream ended mid-character).
class Utf8Repairer {
 public:
  std::string push(std::string_view bytes);
  std::string flush();

 private:
  std::string pending_;  // bytes of an incomplete character, at most 3
};

// One-shot repair of a whole string.
std::string repair_utf8(std::string_view bytes);

// True when bytes are valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

}  // namespace calm
