// Pure parsers for the request headers the API reads: the session cookie (RFC 6265),
// Accept (RFC 9110 §12.5.1) and Content-Type. No I/O: the project use case calls them and
// the unit tests and fuzzers drive them directly.
#pragma once

#include <span>
#include <string_view>

namespace neptun::http {

enum class cookie_status { ok, missing, malformed };

struct session_cookie {
    cookie_status status = cookie_status::missing;
    std::string_view token;  // points into the header value when status == ok
};

inline constexpr std::size_t max_token_length = 512;

// Finds `name` among the pairs of every Cookie header (first occurrence wins) and checks
// that its value is 1..512 cookie-octets, optionally in double quotes (which are removed).
session_cookie find_session_cookie(std::span<const std::string_view> cookie_headers,
                                   std::string_view name);

// True when Accept is absent (no values) or its most specific range that matches
// application/json has q > 0.
bool accepts_json(std::span<const std::string_view> accept_headers);

// True for application/json with any parameters, case-insensitively.
bool is_json_content_type(std::string_view value);

}  // namespace neptun::http
