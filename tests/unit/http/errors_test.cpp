// Error mapping and JSON bodies: every error is {"statusCode":N,"message":...} with
// Content-Type application/json; a body 400 lists its fields; a 503 carries Retry-After.
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "neptun/http/errors.hpp"

namespace {

using neptun::http::field_error;
using neptun::http::problem;
using neptun::http::status;
namespace bhttp = boost::beast::http;

std::string text(boost::beast::string_view v) {
    return std::string(v.data(), v.size());
}

std::string json_string(std::string_view s) {
    std::string out;
    neptun::http::append_json_string(out, s);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_errors)

BOOST_AUTO_TEST_CASE(error_body_without_errors) {
    BOOST_TEST(neptun::http::error_body(status::not_found, "Project not found") ==
               R"({"statusCode":404,"message":"Project not found"})");
    BOOST_TEST(neptun::http::error_body(status::unauthorized, "Unauthorized") ==
               R"({"statusCode":401,"message":"Unauthorized"})");
}

BOOST_AUTO_TEST_CASE(error_body_lists_every_field_error) {
    std::vector<field_error> one{{"project_type", "must be one of web-site, web-service, web-app"}};
    BOOST_TEST(
        neptun::http::error_body(status::bad_request, "Invalid request body", one) ==
        R"({"statusCode":400,"message":"Invalid request body","errors":[)"
        R"({"field":"project_type","message":"must be one of web-site, web-service, web-app"}]})");
    std::vector<field_error> two{{"name", "must not be blank"}, {"owner", "is \"unknown\""}};
    BOOST_TEST(neptun::http::error_body(status::bad_request, "Invalid request body", two) ==
               R"({"statusCode":400,"message":"Invalid request body","errors":[)"
               R"({"field":"name","message":"must not be blank"},)"
               R"({"field":"owner","message":"is \"unknown\""}]})");
}

BOOST_AUTO_TEST_CASE(json_strings_are_escaped) {
    BOOST_TEST(json_string("") == R"("")");
    BOOST_TEST(json_string("plain") == R"("plain")");
    BOOST_TEST(json_string("a\"b") == R"("a\"b")");
    BOOST_TEST(json_string("a\\b") == R"("a\\b")");
    BOOST_TEST(json_string("\n\r\t\b\f") == R"("\n\r\t\b\f")");
    BOOST_TEST(json_string("\x01") == R"("\u0001")");
    BOOST_TEST(json_string("\x1f") == R"("\u001f")");
    BOOST_TEST(json_string(std::string_view("a\0b", 3)) == R"("a\u0000b")");
    BOOST_TEST(json_string("/") == R"("/")");
    BOOST_TEST(json_string("\x7f") == "\"\x7f\"");
}

BOOST_AUTO_TEST_CASE(utf8_passes_through) {
    BOOST_TEST(json_string("é日本🎉") == "\"é日本🎉\"");
    BOOST_TEST(json_string("\u2028") == "\"\u2028\"");
}

BOOST_AUTO_TEST_CASE(append_json_string_appends) {
    std::string out = "x:";
    neptun::http::append_json_string(out, "y");
    BOOST_TEST(out == R"(x:"y")");
}

BOOST_AUTO_TEST_CASE(problems_map_to_the_contract_statuses) {
    struct expectation {
        problem p;
        unsigned code;
        std::string_view message;
    };
    for (auto [p, code, message] : std::vector<expectation>{
             {problem::invalid_id, 400, "Invalid user_id or project_id"},
             {problem::invalid_body, 400, "Invalid request body"},
             {problem::invalid_if_match, 400, "Invalid If-Match header"},
             {problem::invalid_if_none_match, 400, "Invalid If-None-Match header"},
             {problem::precondition_failed, 412, "Project has changed"},
             {problem::precondition_required, 428, "If-Match required"},
             {problem::unauthorized, 401, "Unauthorized"},
             {problem::forbidden, 403, "Forbidden"},
             {problem::not_found, 404, "Not found"},
             {problem::project_not_found, 404, "Project not found"},
             {problem::method_not_allowed, 405, "Method not allowed"},
             {problem::not_acceptable, 406,
              "Not acceptable: this endpoint answers application/json"},
             {problem::unsupported_media_type, 415, "Content-Type must be application/json"},
             {problem::unavailable, 503, "Service unavailable, retry later"},
             {problem::internal, 500, "Internal server error"},
         }) {
        BOOST_TEST_CONTEXT("expected status " << code) {
            BOOST_TEST(static_cast<unsigned>(neptun::http::status_of(p)) == code);
            BOOST_TEST(neptun::http::message_of(p) == message);
            auto res = neptun::http::error_response(p);
            BOOST_TEST(res.result_int() == code);
            BOOST_TEST(res.body() == "{\"statusCode\":" + std::to_string(code) + ",\"message\":\"" +
                                         std::string(message) + "\"}");
            BOOST_TEST(text(res[bhttp::field::content_type]) == "application/json");
        }
    }
}

BOOST_AUTO_TEST_CASE(error_response_for_a_body_400_carries_the_errors) {
    std::vector<field_error> errors{{"name", "must be a string"}};
    auto res = neptun::http::error_response(problem::invalid_body, errors);
    BOOST_TEST(res.result_int() == 400u);
    BOOST_TEST(res.body() == R"({"statusCode":400,"message":"Invalid request body","errors":[)"
                             R"({"field":"name","message":"must be a string"}]})");
    BOOST_TEST(text(res[bhttp::field::content_type]) == "application/json");
}

BOOST_AUTO_TEST_CASE(json_response_sets_content_type_and_body) {
    auto res = neptun::http::json_response(status::ok, R"({"project":{}})");
    BOOST_TEST(res.result_int() == 200u);
    BOOST_TEST(res.version() == 11u);
    BOOST_TEST(res.body() == R"({"project":{}})");
    BOOST_TEST(text(res[bhttp::field::content_type]) == "application/json");
    BOOST_TEST(res.count(bhttp::field::retry_after) == 0u);
}

BOOST_AUTO_TEST_CASE(only_503_carries_retry_after) {
    for (auto s : {status::bad_request, status::unauthorized, status::not_found,
                   status::internal_server_error}) {
        auto res = neptun::http::error_response(s, "x");
        BOOST_TEST(res.count(bhttp::field::retry_after) == 0u);
    }
    auto res = neptun::http::error_response(problem::unavailable);
    BOOST_TEST(res.result_int() == 503u);
    BOOST_TEST(text(res[bhttp::field::retry_after]) == "1");
    BOOST_TEST(res.body() == R"({"statusCode":503,"message":"Service unavailable, retry later"})");
}

BOOST_AUTO_TEST_CASE(retry_after_follows_the_configured_seconds) {
    neptun::http::set_retry_after(7);
    auto seven = neptun::http::error_response(status::service_unavailable, "draining");
    auto json = neptun::http::json_response(status::service_unavailable, "{}");
    neptun::http::set_retry_after(1);  // the default, for the other tests
    BOOST_TEST(text(seven[bhttp::field::retry_after]) == "7");
    BOOST_TEST(text(json[bhttp::field::retry_after]) == "7");
    auto one = neptun::http::error_response(problem::unavailable);
    BOOST_TEST(text(one[bhttp::field::retry_after]) == "1");
}

BOOST_AUTO_TEST_SUITE_END()
