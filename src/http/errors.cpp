#include "neptun/http/errors.hpp"

#include <atomic>

#include <boost/beast/http.hpp>

#include "neptun/net/text.hpp"

namespace neptun::http {
namespace {
std::atomic<unsigned> g_retry_after{1};
}

status status_of(problem p) {
    switch (p) {
        case problem::invalid_id:
        case problem::invalid_body:
        case problem::invalid_if_match:
        case problem::invalid_if_none_match:
            return status::bad_request;
        case problem::unauthorized:
            return status::unauthorized;
        case problem::forbidden:
            return status::forbidden;
        case problem::not_found:
        case problem::project_not_found:
            return status::not_found;
        case problem::method_not_allowed:
            return status::method_not_allowed;
        case problem::not_acceptable:
            return status::not_acceptable;
        case problem::unsupported_media_type:
            return status::unsupported_media_type;
        case problem::precondition_failed:
            return status::precondition_failed;
        case problem::precondition_required:
            return status::precondition_required;
        case problem::unavailable:
            return status::service_unavailable;
        case problem::internal:
            return status::internal_server_error;
    }
    return status::internal_server_error;
}

std::string_view message_of(problem p) {
    switch (p) {
        case problem::invalid_id:
            return "Invalid user_id or project_id";
        case problem::invalid_body:
            return "Invalid request body";
        case problem::invalid_if_match:
            return "Invalid If-Match header";
        case problem::invalid_if_none_match:
            return "Invalid If-None-Match header";
        case problem::unauthorized:
            return "Unauthorized";
        case problem::forbidden:
            return "Forbidden";
        case problem::not_found:
            return "Not found";
        case problem::project_not_found:
            return "Project not found";
        case problem::method_not_allowed:
            return "Method not allowed";
        case problem::not_acceptable:
            return "Not acceptable: this endpoint answers application/json";
        case problem::unsupported_media_type:
            return "Content-Type must be application/json";
        case problem::precondition_failed:
            return "Project has changed";
        case problem::precondition_required:
            return "If-Match required";
        case problem::unavailable:
            return "Service unavailable, retry later";
        case problem::internal:
            return "Internal server error";
    }
    return "Internal server error";
}

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    net::append_json_escaped(out, s);
    out += '"';
}

std::string error_body(status s, std::string_view message, std::span<const field_error> errors) {
    std::string out;
    out.reserve(64 + message.size());
    out += "{\"statusCode\":";
    out += std::to_string(static_cast<unsigned>(s));
    out += ",\"message\":";
    append_json_string(out, message);
    if (!errors.empty()) {
        out += ",\"errors\":[";
        bool first = true;
        for (const auto& e : errors) {
            if (!first) out += ',';
            first = false;
            out += "{\"field\":";
            append_json_string(out, e.field);
            out += ",\"message\":";
            append_json_string(out, e.message);
            out += '}';
        }
        out += ']';
    }
    out += '}';
    return out;
}

response json_response(status s, std::string body) {
    response res{s, 11};
    res.set(boost::beast::http::field::content_type, "application/json");
    // Answers are per user and never meant for a cache or for content sniffing.
    res.set(boost::beast::http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    if (s == status::service_unavailable)
        res.set(boost::beast::http::field::retry_after,
                std::to_string(g_retry_after.load(std::memory_order_relaxed)));
    res.body() = std::move(body);
    return res;
}

response error_response(status s, std::string_view message, std::span<const field_error> errors) {
    return json_response(s, error_body(s, message, errors));
}

response error_response(problem p, std::span<const field_error> errors) {
    return error_response(status_of(p), message_of(p), errors);
}

void set_retry_after(unsigned seconds) {
    g_retry_after.store(seconds, std::memory_order_relaxed);
}

}  // namespace neptun::http
