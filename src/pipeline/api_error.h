// Errors as the OpenAI API shapes them:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "model", "code":
//   "model_not_found"}}
// Every error calm answers over HTTP goes through this one type.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engines/engine.h"
#include "scheduler/scheduler.h"

namespace calm {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;      // empty: null
  std::string code;       // empty: null
  int retry_after_s = 0;  // > 0: sent as a Retry-After header

  nlohmann::json to_json() const;

  static ApiError bad_request(std::string message, std::string param = "", std::string code = "");
  static ApiError from_engine(const EngineError& error);
  // 503 for a full queue or a queue timeout, 429 for a model's own limit.
  static ApiError from_scheduler(const SchedulerError& error);
};

}  // namespace calm
