// An error answered to an HTTP client in OpenAI's shape:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}
#pragma once

#include <stdexcept>
#include <string>

namespace tessera::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string code, const std::string& message, std::string param = "")
      : std::runtime_error(message), status(status), type(std::move(type)), code(std::move(code)),
        param(std::move(param)) {}

  std::string body() const;  // the JSON above

  int status;
  std::string type;
  std::string code;
  std::string param;  // the request field at fault, "" when none
};

// The common ones, so each status keeps one type and code.
ApiError bad_request(const std::string& message, const std::string& param = "", const std::string& code = "invalid_value");
ApiError unauthorized(const std::string& message);
ApiError not_found(const std::string& message, const std::string& code = "not_found");
ApiError too_large(const std::string& message);
ApiError too_many(const std::string& message, const std::string& code);
ApiError unavailable(const std::string& message, const std::string& code);

}  // namespace tessera::server
