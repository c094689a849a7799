// Every error the API can answer, mapped to its HTTP status and JSON body in one place.
// Used by the project use case, the routers and the connection loop's protocol errors.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "neptun/net/server.hpp"

namespace neptun::http {

using net::response;
using status = boost::beast::http::status;

enum class problem {
    invalid_id,              // 400
    invalid_body,            // 400, with field errors
    invalid_if_match,        // 400, names the header
    invalid_if_none_match,   // 400, names the header
    unauthorized,            // 401
    forbidden,               // 403
    not_found,               // 404 (no route)
    project_not_found,       // 404
    method_not_allowed,      // 405
    not_acceptable,          // 406
    unsupported_media_type,  // 415
    precondition_failed,     // 412
    precondition_required,   // 428
    unavailable,             // 503
    internal,                // 500
};

struct field_error {
    std::string field;
    std::string message;
};

status status_of(problem p);
std::string_view message_of(problem p);

// Appends `s` (valid UTF-8) as a JSON string literal.
void append_json_string(std::string& out, std::string_view s);

// {"statusCode":N,"message":"..."[,"errors":[{"field":..,"message":..}]]}
std::string error_body(status s, std::string_view message,
                       std::span<const field_error> errors = {});

// A JSON response with Content-Type: application/json. 503s carry Retry-After.
response json_response(status s, std::string body);
response error_response(status s, std::string_view message,
                        std::span<const field_error> errors = {});
response error_response(problem p, std::span<const field_error> errors = {});

// Seconds in the Retry-After of every 503 (set once from config at start).
void set_retry_after(unsigned seconds);

}  // namespace neptun::http
