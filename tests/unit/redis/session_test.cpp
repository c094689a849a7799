// The session value the Neptun web app writes: only a positive integer `user.id` counts.
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

#include "neptun/redis/session_store.hpp"

namespace {

using neptun::redis::user_id_from_session;

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_session)

BOOST_AUTO_TEST_CASE(user_id_of_a_minimal_session) {
    auto id = user_id_from_session(R"({"user":{"id":456}})");
    BOOST_TEST_REQUIRE(id.has_value());
    BOOST_TEST(*id == 456);
}

BOOST_AUTO_TEST_CASE(extra_fields_are_ignored) {
    auto id = user_id_from_session(
        R"({"user":{"id":456,"primary_email":"a@b.c","roles":["x"]},)"
        R"("loggedInAt":"2025-02-16T17:42:11.000Z","cookie":{"maxAge":null}})");
    BOOST_TEST_REQUIRE(id.has_value());
    BOOST_TEST(*id == 456);
}

BOOST_AUTO_TEST_CASE(whitespace_around_is_fine) {
    auto id = user_id_from_session(" \n{ \"user\" : { \"id\" : 7 } }\n");
    BOOST_TEST_REQUIRE(id.has_value());
    BOOST_TEST(*id == 7);
}

BOOST_AUTO_TEST_CASE(integer_limits) {
    auto one = user_id_from_session(R"({"user":{"id":1}})");
    BOOST_TEST_REQUIRE(one.has_value());
    BOOST_TEST(*one == 1);
    auto serial_max = user_id_from_session(R"({"user":{"id":2147483647}})");
    BOOST_TEST_REQUIRE(serial_max.has_value());
    BOOST_TEST(*serial_max == 2147483647);
    auto int64_max = user_id_from_session(R"({"user":{"id":9223372036854775807}})");
    BOOST_TEST_REQUIRE(int64_max.has_value());
    BOOST_TEST(*int64_max == INT64_MAX);
}

BOOST_AUTO_TEST_CASE(anything_but_a_positive_integer_user_id_is_nothing) {
    for (std::string_view json : {
             R"({"user":{"id":0}})",
             R"({"user":{"id":-1}})",
             R"({"user":{"id":-9223372036854775808}})",
             R"({"user":{"id":1.5}})",
             R"({"user":{"id":"456"}})",
             R"({"user":{"id":null}})",
             R"({"user":{"id":true}})",
             R"({"user":{"id":[456]}})",
             R"({"user":{"id":{"value":456}}})",
             R"({"user":{"id":9223372036854775808}})",
             R"({"user":{"id":18446744073709551615}})",
             R"({"user":{"id":1e30}})",
             R"({"user":{}})",
             R"({"user":{"ID":456}})",
             R"({"id":456})",
             R"({"userId":456})",
             R"({"user":null})",
             R"({"user":456})",
             R"({"user":"456"})",
             R"({"user":[{"id":456}]})",
             R"([{"user":{"id":456}}])",
             R"("{\"user\":{\"id\":456}}")",
             "456",
             "null",
             "",
             "not json",
             R"({"user":{"id":456})",
             R"({"user":{"id":456}}x)",
             R"({"user":{"id":456}} {})",
         }) {
        BOOST_TEST_CONTEXT("session '" << json << "'") {
            BOOST_TEST(!user_id_from_session(json).has_value());
        }
    }
}

BOOST_AUTO_TEST_CASE(large_session_values_parse) {
    // Bigger than the parser's stack scratch buffer: it must still read user.id.
    std::string json = R"({"user":{"id":42,"bio":")" + std::string(20000, 'x') + R"("}})";
    auto id = user_id_from_session(json);
    BOOST_TEST_REQUIRE(id.has_value());
    BOOST_TEST(*id == 42);
}

BOOST_AUTO_TEST_SUITE_END()
