// Route table: the project path with GET and PATCH, 404 for unknown paths, 405 with Allow.
#include <boost/test/unit_test.hpp>

#include <ostream>
#include <string>
#include <string_view>

#include "neptun/http/router.hpp"

namespace neptun::http {
static std::ostream& operator<<(std::ostream& os, route_match::kind k) {
    switch (k) {
        case route_match::kind::found:
            return os << "found";
        case route_match::kind::no_route:
            return os << "no_route";
        case route_match::kind::wrong_method:
            return os << "wrong_method";
    }
    return os << "?";
}
}  // namespace neptun::http

namespace {

using neptun::http::route_match;
using neptun::http::router;
using neptun::http::verb;
using neptun::net::route_label;
using kind = route_match::kind;

constexpr std::string_view project_path = "/api/users/{user_id}/projects/{project_id}";

router project_router() {
    return router({{project_path, {verb::get, verb::patch}, "project"}});
}

std::string text(boost::beast::string_view v) {
    return std::string(v.data(), v.size());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_router)

BOOST_AUTO_TEST_CASE(found_with_params_in_pattern_order) {
    auto r = project_router();
    for (verb v : {verb::get, verb::patch}) {
        auto m = r.find("/api/users/456/projects/123", v);
        BOOST_TEST(m.result == kind::found);
        BOOST_TEST(m.route == 0);
        BOOST_TEST((m.label.name() == "project"));
        BOOST_TEST(m.params[0] == "456");
        BOOST_TEST(m.params[1] == "123");
        BOOST_TEST(m.params[2].empty());
        BOOST_TEST(m.allow.empty());
    }
}

BOOST_AUTO_TEST_CASE(params_are_raw_segments) {
    // The router does not judge ids: parse_id does, so that a bad id is a 400, not a 404.
    auto m = project_router().find("/api/users/abc/projects/-1", verb::patch);
    BOOST_TEST(m.result == kind::found);
    BOOST_TEST(m.params[0] == "abc");
    BOOST_TEST(m.params[1] == "-1");
}

BOOST_AUTO_TEST_CASE(query_string_is_ignored) {
    auto r = project_router();
    auto m = r.find("/api/users/456/projects/123?fields=name&x=/a/b", verb::patch);
    BOOST_TEST(m.result == kind::found);
    BOOST_TEST(m.params[0] == "456");
    BOOST_TEST(m.params[1] == "123");
    BOOST_TEST(r.find("/api/users/456/projects/123?", verb::get).result == kind::found);
    BOOST_TEST(r.find("/api/users/456/projects/?x=1", verb::get).result == kind::no_route);
}

BOOST_AUTO_TEST_CASE(other_methods_are_wrong_with_allow) {
    auto r = project_router();
    for (verb v : {verb::post, verb::put, verb::delete_, verb::options, verb::head}) {
        BOOST_TEST_CONTEXT("method " << boost::beast::http::to_string(v)) {
            auto m = r.find("/api/users/456/projects/123", v);
            BOOST_TEST(m.result == kind::wrong_method);
            BOOST_TEST(m.route == 0);
            BOOST_TEST((m.label.name() == "project"));
            BOOST_TEST(m.allow == "GET, PATCH");
        }
    }
}

BOOST_AUTO_TEST_CASE(other_paths_are_no_route) {
    auto r = project_router();
    for (std::string_view target :
         {"/api/users/456/projects/123/", "/api/users/456/projects", "/api/users/456/projects/",
          "/api/users/456/projects/123/extra", "/api/users//projects/1", "/api/users/1/projects//",
          "/api/users/456", "/api/user/456/projects/123", "/API/users/456/projects/123",
          "/api/users/456/Projects/123", "//api/users/456/projects/123", "/", "", "*",
          "api/users/456/projects/123", "http://host/api/users/456/projects/123", "/livez"}) {
        BOOST_TEST_CONTEXT("target '" << target << "'") {
            for (verb v : {verb::get, verb::patch, verb::post}) {
                auto m = r.find(target, v);
                BOOST_TEST(m.result == kind::no_route);
                BOOST_TEST(m.route == -1);
                BOOST_TEST((m.label == route_label::unmatched));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(several_routes_each_with_their_label) {
    router r({{"/livez", {verb::get}, "livez"},
              {"/readyz", {verb::get}, "readyz"},
              {"/metrics", {verb::get}, "metrics"}});
    auto m = r.find("/readyz", verb::get);
    BOOST_TEST(m.result == kind::found);
    BOOST_TEST(m.route == 1);
    BOOST_TEST((m.label.name() == "readyz"));
    auto w = r.find("/metrics", verb::post);
    BOOST_TEST(w.result == kind::wrong_method);
    BOOST_TEST(w.allow == "GET");
    BOOST_TEST((w.label.name() == "metrics"));
    BOOST_TEST(r.find("/livez/", verb::get).result == kind::no_route);
}

BOOST_AUTO_TEST_CASE(decide_answers_404_early_for_no_route) {
    auto d = project_router().decide("/api/users/456/projects", verb::patch);
    BOOST_TEST_REQUIRE(d.early.has_value());
    BOOST_TEST(d.early->result_int() == 404u);
    BOOST_TEST(d.early->body() == R"({"statusCode":404,"message":"Not found"})");
    BOOST_TEST(text((*d.early)[boost::beast::http::field::content_type]) == "application/json");
    BOOST_TEST(d.route == -1);
    BOOST_TEST((d.label == route_label::unmatched));
}

BOOST_AUTO_TEST_CASE(decide_answers_405_early_with_allow) {
    auto d = project_router().decide("/api/users/456/projects/123?x=1", verb::post);
    BOOST_TEST_REQUIRE(d.early.has_value());
    BOOST_TEST(d.early->result_int() == 405u);
    BOOST_TEST(d.early->body() == R"({"statusCode":405,"message":"Method not allowed"})");
    BOOST_TEST(text((*d.early)[boost::beast::http::field::allow]) == "GET, PATCH");
    BOOST_TEST(text((*d.early)[boost::beast::http::field::content_type]) == "application/json");
    BOOST_TEST(d.route == 0);
    BOOST_TEST((d.label.name() == "project"));
}

BOOST_AUTO_TEST_CASE(decide_has_no_early_response_for_a_found_route) {
    auto r = project_router();
    for (verb v : {verb::get, verb::patch}) {
        auto d = r.decide("/api/users/456/projects/123", v);
        BOOST_TEST(!d.early.has_value());
        BOOST_TEST(d.route == 0);
        BOOST_TEST((d.label.name() == "project"));
    }
}

BOOST_AUTO_TEST_SUITE_END()
