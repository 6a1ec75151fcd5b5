// Feeds: the bytes of an HTTP request body, as POST /v1/chat/completions,
// /v1/completions and /v1/route receive it: parse_request_body (the JSON),
// then parse_chat_request and parse_completion_request on the same value,
// and the route endpoint's variant (a body without "model" gets the router's
// name first). server/openai_schema.h.
// Fine: ApiError (a 400 naming the field). A finding: any other exception
// (the server would answer 500), a crash, a sanitizer report, a hang.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "server/openai_schema.h"

namespace {

template <typename Parse>
void parse_quietly(Parse parse, const nlohmann::json& body) {
  try {
    const calm::ApiRequest request = parse(body);
    // What the pipeline reads next: a parsed request is complete.
    if (request.model.empty()) __builtin_trap();
  } catch (const calm::ApiError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json body;
  try {
    body = calm::parse_request_body(calm::fuzz::text_of(data, size));
  } catch (const calm::ApiError&) {
    return 0;
  }
  parse_quietly(calm::parse_chat_request, body);
  parse_quietly(calm::parse_completion_request, body);
  if (body.is_object() && !body.contains("model")) {
    body["model"] = "auto";
    parse_quietly(
        body.contains("prompt") ? calm::parse_completion_request : calm::parse_chat_request, body);
  }
  return 0;
}
