// Entity tags, If-Match and If-None-Match lists (RFC 9110 §8.8.3, §13.1.1, §13.1.2).
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "neptun/http/conditional.hpp"

namespace {

using neptun::http::parse_precondition;
using neptun::http::precondition;
using kind = precondition::kind;

precondition parse(std::vector<std::string_view> values) {
    return parse_precondition(values);
}

// "tag" or W/"tag" per element, in order, for exact comparison.
std::string render(const precondition& p) {
    std::string out;
    for (const auto& t : p.tags) {
        if (!out.empty()) out += ',';
        if (t.weak) out += "W/";
        out += '"';
        out += t.opaque;
        out += '"';
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conditional)

BOOST_AUTO_TEST_CASE(no_field_is_absent) {
    BOOST_TEST((parse({}).what == kind::absent));
}

BOOST_AUTO_TEST_CASE(star_alone_is_any) {
    BOOST_TEST((parse({"*"}).what == kind::any));
    BOOST_TEST((parse({" * "}).what == kind::any));
    BOOST_TEST((parse({"*", "*"}).what == kind::any));
}

BOOST_AUTO_TEST_CASE(lists_of_tags_across_fields_in_order) {
    auto p = parse({R"("a", W/"b" ,"c")", R"("d")"});
    BOOST_TEST((p.what == kind::tags));
    BOOST_TEST(render(p) == R"("a",W/"b","c","d")");
}

BOOST_AUTO_TEST_CASE(empty_list_elements_are_skipped) {
    auto p = parse({R"(, "a",,  ,"b",)"});
    BOOST_TEST((p.what == kind::tags));
    BOOST_TEST(render(p) == R"("a","b")");
}

BOOST_AUTO_TEST_CASE(empty_tag_and_obs_text_are_tags) {
    auto p = parse({"\"\", \"\xC3\xA9!#~\""});
    BOOST_TEST((p.what == kind::tags));
    BOOST_TEST(p.tags.size() == 2u);
    BOOST_TEST(p.tags[0].opaque == "");
    BOOST_TEST(p.tags[1].opaque == "\xC3\xA9!#~");
}

BOOST_AUTO_TEST_CASE(malformed_values) {
    for (std::string_view bad : {"", " ", ",", "abc", "\"abc", "abc\"", "W/abc", "w/\"abc\"",
                                 "\"a\" \"b\"", "\"a\";x", "\"a b\"", "\"a\tb\"", "\"a\\\"b\"",
                                 "*, \"a\"", "\"a\", *", "**", "W/ \"a\"", "\"a\"\"b\""}) {
        BOOST_TEST_CONTEXT("value: [" << bad << "]") {
            auto p = parse({bad});
            BOOST_TEST((p.what == kind::malformed));
            BOOST_TEST(p.tags.empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(one_bad_field_makes_the_whole_list_malformed) {
    BOOST_TEST((parse({"\"a\"", "nope"}).what == kind::malformed));
    BOOST_TEST((parse({"*", "\"a\""}).what == kind::malformed));
}

BOOST_AUTO_TEST_CASE(strong_comparison_never_matches_weak_tags) {
    auto p = parse({R"(W/"v1", "v2")"});
    BOOST_TEST(!neptun::http::matches_strong(p, "v1"));
    BOOST_TEST(neptun::http::matches_strong(p, "v2"));
    BOOST_TEST(!neptun::http::matches_strong(p, "v3"));
    BOOST_TEST(neptun::http::matches_strong(parse({"*"}), "anything"));
}

BOOST_AUTO_TEST_CASE(weak_comparison_ignores_the_weak_flag) {
    auto p = parse({R"(W/"v1", "v2")"});
    BOOST_TEST(neptun::http::matches_weak(p, "v1"));
    BOOST_TEST(neptun::http::matches_weak(p, "v2"));
    BOOST_TEST(!neptun::http::matches_weak(p, "v"));
    BOOST_TEST(neptun::http::matches_weak(parse({"*"}), "x"));
}

BOOST_AUTO_TEST_CASE(the_statement_gets_the_strong_tags_joined_by_spaces) {
    const std::string a(32, 'a'), b = "0123456789abcdef0123456789abcdef";
    BOOST_TEST(neptun::http::strong_tag_list(
                   parse({"\"" + a + "\", W/\"" + b + "\", \"" + b + "\""})) == a + " " + b);
    BOOST_TEST(neptun::http::strong_tag_list(parse({"W/\"" + b + "\""})) == "");
    // Tags the server never makes can never match: left out (also bytes that are not UTF-8).
    BOOST_TEST(neptun::http::strong_tag_list(parse({"\"c,d\", \"\xff\", \"" + a + "\""})) == a);
}

BOOST_AUTO_TEST_CASE(quoting) {
    BOOST_TEST(neptun::http::quote_tag("0123abcd") == "\"0123abcd\"");
}

BOOST_AUTO_TEST_SUITE_END()
