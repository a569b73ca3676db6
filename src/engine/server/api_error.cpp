#include "engine/server/api_error.h"

#include <nlohmann/json.hpp>

namespace tessera::server {

std::string ApiError::body() const {
  nlohmann::json error{{"message", what()}, {"type", type}, {"code", code}};
  error["param"] = param.empty() ? nlohmann::json() : nlohmann::json(param);
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ApiError bad_request(const std::string& message, const std::string& param, const std::string& code) {
  return ApiError(400, "invalid_request_error", code, message, param);
}
ApiError unauthorized(const std::string& message) {
  return ApiError(401, "invalid_request_error", "invalid_api_key", message);
}
ApiError not_found(const std::string& message, const std::string& code) {
  return ApiError(404, "invalid_request_error", code, message);
}
ApiError too_large(const std::string& message) { return ApiError(413, "invalid_request_error", "body_too_large", message); }
ApiError too_many(const std::string& message, const std::string& code) {
  return ApiError(429, "rate_limit_error", code, message);
}
ApiError unavailable(const std::string& message, const std::string& code) {
  return ApiError(503, "server_error", code, message);
}

}  // namespace tessera::server
