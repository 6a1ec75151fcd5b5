#include "pipeline/api_error.h"

namespace calm {

nlohmann::json ApiError::to_json() const {
  nlohmann::json error = {
      {"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) error["param"] = param;
  if (!code.empty()) error["code"] = code;
  return {{"error", error}};
}

ApiError ApiError::bad_request(std::string message, std::string param, std::string code) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param),
                  std::move(code)};
}

ApiError ApiError::from_engine(const EngineError& error) {
  using Kind = EngineError::Kind;
  switch (error.kind()) {
    case Kind::kBadRequest:
      return bad_request(error.what(), error.param(), error.code());
    case Kind::kContextOverflow:
      return bad_request(error.what(), error.param().empty() ? "messages" : error.param(),
                         "context_length_exceeded");
    case Kind::kUnavailable:
      return ApiError{503, error.what(), "server_error", "", "model_unavailable"};
    case Kind::kUpstream:
      return ApiError{502, error.what(), "server_error", "", "upstream_error"};
    case Kind::kTimeout:
      return ApiError{504, error.what(), "server_error", "", "upstream_timeout"};
    case Kind::kInternal:
      break;
  }
  return ApiError{500, error.what(), "server_error", "", "internal_error"};
}

}  // namespace calm

namespace calm {

ApiError ApiError::from_scheduler(const SchedulerError& error) {
  using Kind = SchedulerError::Kind;
  ApiError api{503, error.what(), "server_error", "", "server_busy"};
  if (error.kind() == Kind::kModelBusy) {
    api = ApiError{429, error.what(), "rate_limit_error", "", "model_busy"};
  } else if (error.kind() == Kind::kTimedOut) {
    api.code = "queue_timeout";
  } else if (error.kind() == Kind::kStopping) {
    api.code = "server_stopping";
  }
  api.retry_after_s = error.retry_after_s();
  return api;
}

}  // namespace calm
