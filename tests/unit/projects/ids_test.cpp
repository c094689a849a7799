// The {user_id} and {project_id} path segments: 1 ... 2147483647, digits only, no sign, no
// leading zero.
#include <boost/test/unit_test.hpp>

#include <string_view>

#include "neptun/projects/ids.hpp"

BOOST_AUTO_TEST_SUITE(projects_ids)

BOOST_AUTO_TEST_CASE(valid_ids) {
    struct expectation {
        std::string_view segment;
        std::int32_t id;
    };
    for (auto [segment, id] :
         {expectation{"1", 1}, expectation{"9", 9}, expectation{"10", 10}, expectation{"123", 123},
          expectation{"1000000000", 1000000000}, expectation{"2147483646", 2147483646},
          expectation{"2147483647", 2147483647}}) {
        BOOST_TEST_CONTEXT("segment '" << segment << "'") {
            auto parsed = neptun::projects::parse_id(segment);
            BOOST_TEST_REQUIRE(parsed.has_value());
            BOOST_TEST(*parsed == id);
        }
    }
}

BOOST_AUTO_TEST_CASE(invalid_ids) {
    for (std::string_view segment :
         {"0",          "00",         "01",         "007",         "2147483648",
          "4294967295", "4294967297", "9999999999", "99999999999", "18446744073709551617",
          "-1",         "+1",         "",           "1a",          "a1",
          " 1",         "1 ",         "1.0",        "0x1",         "1e3",
          "%31",        "\xd9\xa3",   "12 3"}) {
        BOOST_TEST_CONTEXT("segment '" << segment << "'") {
            BOOST_TEST(!neptun::projects::parse_id(segment).has_value());
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
