// The request headers the API reads: the session cookie (RFC 6265), Accept (RFC 9110
// §12.5.1) and Content-Type.
#include <boost/test/unit_test.hpp>

#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "neptun/http/headers.hpp"

namespace neptun::http {
static std::ostream& operator<<(std::ostream& os, cookie_status s) {
    switch (s) {
        case cookie_status::ok:
            return os << "ok";
        case cookie_status::missing:
            return os << "missing";
        case cookie_status::malformed:
            return os << "malformed";
    }
    return os << "?";
}
}  // namespace neptun::http

namespace {

using neptun::http::cookie_status;
using neptun::http::session_cookie;

constexpr std::string_view cookie_name = "neptun-session";

session_cookie find(std::initializer_list<std::string_view> headers) {
    std::vector<std::string_view> h(headers);
    return neptun::http::find_session_cookie(h, cookie_name);
}

bool accepts(std::initializer_list<std::string_view> headers) {
    std::vector<std::string_view> h(headers);
    return neptun::http::accepts_json(h);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_headers)

BOOST_AUTO_TEST_CASE(cookie_alone) {
    auto c = find({"neptun-session=abc123"});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == "abc123");
}

BOOST_AUTO_TEST_CASE(cookie_among_others_in_any_order) {
    for (std::string_view header :
         {"a=1; neptun-session=tok; b=2", "neptun-session=tok; a=1", "a=1; b=2; neptun-session=tok",
          "a=1;neptun-session=tok;b=2", "a=1;\tneptun-session=tok\t;b=2", "  neptun-session=tok  ",
          "a=1;  neptun-session=tok", "garbage; neptun-session=tok",
          "neptun-sessionx=no; xneptun-session=no; neptun-session=tok"}) {
        BOOST_TEST_CONTEXT("Cookie: " << header) {
            auto c = find({header});
            BOOST_TEST(c.status == cookie_status::ok);
            BOOST_TEST(c.token == "tok");
        }
    }
}

BOOST_AUTO_TEST_CASE(token_points_into_the_header) {
    std::string header = "a=1; neptun-session=tok";
    std::vector<std::string_view> h{header};
    auto c = neptun::http::find_session_cookie(h, cookie_name);
    BOOST_TEST_REQUIRE(c.status == cookie_status::ok);
    BOOST_TEST(c.token.data() == header.data() + header.find("tok"));
}

BOOST_AUTO_TEST_CASE(first_of_two_wins) {
    auto c = find({"neptun-session=first; neptun-session=second"});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == "first");
    // ... also when the first one is broken: the client sent that one first.
    BOOST_TEST(find({"neptun-session=; neptun-session=second"}).status == cookie_status::malformed);
}

BOOST_AUTO_TEST_CASE(several_cookie_headers) {
    auto c = find({"a=1", "b=2; neptun-session=tok"});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == "tok");
    auto first = find({"neptun-session=one", "neptun-session=two"});
    BOOST_TEST(first.status == cookie_status::ok);
    BOOST_TEST(first.token == "one");
}

BOOST_AUTO_TEST_CASE(quoted_value_is_unquoted) {
    auto c = find({"neptun-session=\"abc\""});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == "abc");
}

BOOST_AUTO_TEST_CASE(name_must_match_exactly) {
    for (std::string_view header :
         {"neptun-sessionx=abc", "xneptun-session=abc", "Neptun-Session=abc", "NEPTUN-SESSION=abc",
          "neptun_session=abc", "neptun-session", "neptun-sessionabc", "a=neptun-session=abc"}) {
        BOOST_TEST_CONTEXT("Cookie: " << header) {
            BOOST_TEST(find({header}).status == cookie_status::missing);
        }
    }
}

BOOST_AUTO_TEST_CASE(no_cookie_is_missing) {
    BOOST_TEST(find({}).status == cookie_status::missing);
    BOOST_TEST(find({""}).status == cookie_status::missing);
    BOOST_TEST(find({"a=1; b=2"}).status == cookie_status::missing);
    BOOST_TEST(find({";;;"}).status == cookie_status::missing);
    BOOST_TEST(find({}).token.empty());
}

BOOST_AUTO_TEST_CASE(token_length_limits) {
    std::string max(512, 'a');
    auto at_limit = "neptun-session=" + max;
    auto c = find({at_limit});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == max);
    auto quoted = "neptun-session=\"" + max + "\"";
    BOOST_TEST(find({quoted}).status == cookie_status::ok);

    auto past = "neptun-session=" + std::string(513, 'a');
    BOOST_TEST(find({past}).status == cookie_status::malformed);
    auto quoted_past = "neptun-session=\"" + std::string(513, 'a') + "\"";
    BOOST_TEST(find({quoted_past}).status == cookie_status::malformed);

    auto one = find({"neptun-session=x"});
    BOOST_TEST(one.status == cookie_status::ok);
    BOOST_TEST(one.token == "x");
}

BOOST_AUTO_TEST_CASE(empty_value_is_malformed) {
    BOOST_TEST(find({"neptun-session="}).status == cookie_status::malformed);
    BOOST_TEST(find({"neptun-session=; a=1"}).status == cookie_status::malformed);
    BOOST_TEST(find({"neptun-session=\"\""}).status == cookie_status::malformed);
    BOOST_TEST(find({"neptun-session=   "}).status == cookie_status::malformed);
    BOOST_TEST(find({"neptun-session=abc"}).token == "abc");
}

BOOST_AUTO_TEST_CASE(values_outside_cookie_octets_are_malformed) {
    for (std::string_view header :
         {"neptun-session=ab c", "neptun-session=ab,c", "neptun-session=\"ab;c\"",
          "neptun-session=ab\\c", "neptun-session=ab\"c", "neptun-session=\"abc",
          "neptun-session=abc\"", "neptun-session=ab\xc3\xa9", "neptun-session=ab\x01",
          "neptun-session=ab\x7f", "neptun-session=ab\tc", "neptun-session=\"a\"b\""}) {
        BOOST_TEST_CONTEXT("Cookie: " << header) {
            auto c = find({header});
            BOOST_TEST(c.status == cookie_status::malformed);
            BOOST_TEST(c.token.empty());
        }
    }
}

BOOST_AUTO_TEST_CASE(unquoted_semicolon_ends_the_value) {
    // `;` separates cookie-pairs, so "ab;c" is the token "ab" and a pair "c".
    auto c = find({"neptun-session=ab;c"});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == "ab");
}

BOOST_AUTO_TEST_CASE(every_cookie_octet_is_accepted) {
    std::string token;
    for (int c = 0x21; c <= 0x7e; ++c)
        if (c != '"' && c != ',' && c != ';' && c != '\\') token += static_cast<char>(c);
    BOOST_TEST(token.size() == 90u);
    auto header = "neptun-session=" + token;
    auto c = find({header});
    BOOST_TEST(c.status == cookie_status::ok);
    BOOST_TEST(c.token == token);
}

BOOST_AUTO_TEST_CASE(accept_absent_admits_json) {
    BOOST_TEST(accepts({}));
}

BOOST_AUTO_TEST_CASE(accept_ranges_that_admit_json) {
    for (std::string_view header :
         {"application/json", "application/*", "*/*", "text/html, application/json;q=0.5",
          "APPLICATION/JSON", "Application/*", "application/json; charset=utf-8",
          "application/json;q=1", "application/json;q=1.000", "application/json;Q=0.5",
          "application/json;q=0.001", "*/*;q=0.1", "text/html,application/xhtml+xml,*/*;q=0.8",
          "*/*;q=0, application/*;q=0.3", "application/json;q=0, application/json",
          "application/json;q=2, */*", "  application/json  "}) {
        BOOST_TEST_CONTEXT("Accept: " << header) {
            BOOST_TEST(accepts({header}));
        }
    }
    BOOST_TEST(accepts({"text/html", "application/json"}));
}

BOOST_AUTO_TEST_CASE(accept_ranges_that_refuse_json) {
    for (std::string_view header :
         {"text/html", "application/json;q=0", "application/json; q=0", "application/json;q=0.000",
          "*/*;q=0", "application/xml", "text/*", "application/jsonx", "application/json-seq",
          "*/*, application/json;q=0", "application/*;q=0, */*",
          "application/*, application/json;q=0", "application/json;q=2", "application/json;q=1.5",
          "application/json;q=-1"}) {
        BOOST_TEST_CONTEXT("Accept: " << header) {
            BOOST_TEST(!accepts({header}));
        }
    }
    BOOST_TEST(!accepts({"text/html", "image/png"}));
}

BOOST_AUTO_TEST_CASE(content_type_json) {
    for (std::string_view v :
         {"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
          "application/json ; charset=utf-8", "APPLICATION/JSON"}) {
        BOOST_TEST_CONTEXT("Content-Type: " << v) {
            BOOST_TEST(neptun::http::is_json_content_type(v));
        }
    }
}

BOOST_AUTO_TEST_CASE(content_type_not_json) {
    for (std::string_view v :
         {"text/plain", "application/jsonx", "application/json-patch+json", "", "application/",
          "json", "text/json", "application/x-www-form-urlencoded", "application/json+x"}) {
        BOOST_TEST_CONTEXT("Content-Type: '" << v << "'") {
            BOOST_TEST(!neptun::http::is_json_content_type(v));
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
