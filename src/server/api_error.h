// Errors as the OpenAI API shapes them:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "model", "code":
//   "model_not_found"}}
// Every error calm answers over HTTP goes through this one type.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engines/engine.h"

namespace calm {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null

  nlohmann::json to_json() const;

  static ApiError bad_request(std::string message, std::string param = "", std::string code = "");
  static ApiError from_engine(const EngineError& error);
};

}  // namespace calm
