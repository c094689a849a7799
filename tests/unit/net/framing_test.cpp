// Request framing: the checks Beast 1.81 lets through (CONTRACT §1, STYLE "Check framing
// yourself"): CL with TE, a TE that is not exactly `chunked`, bad or differing CLs.
#include <boost/test/unit_test.hpp>

#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "neptun/net/framing.hpp"

namespace neptun::net {
// Lets BOOST_TEST print the verdicts it compares.
static std::ostream& operator<<(std::ostream& os, framing_error e) {
    return os << describe(e);
}
}  // namespace neptun::net

namespace {

using neptun::net::framing_error;

framing_error check(std::initializer_list<std::string_view> content_lengths,
                    std::initializer_list<std::string_view> transfer_encodings,
                    bool http10 = false) {
    std::vector<std::string_view> cl(content_lengths), te(transfer_encodings);
    return neptun::net::check_framing(cl, te, http10);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(net_framing)

BOOST_AUTO_TEST_CASE(no_length_and_no_coding_is_fine) {
    BOOST_TEST(check({}, {}) == framing_error::none);
    BOOST_TEST(check({}, {}, true) == framing_error::none);
}

BOOST_AUTO_TEST_CASE(content_length_with_transfer_encoding_is_refused) {
    BOOST_TEST(check({"5"}, {"chunked"}) == framing_error::length_with_transfer_encoding);
    // The parser hands the fields over separately, so "both orders" on the wire are the same
    // call; both spellings of each still have to be refused.
    BOOST_TEST(check({"0"}, {"chunked"}) == framing_error::length_with_transfer_encoding);
    BOOST_TEST(check({"5"}, {"gzip, chunked"}) == framing_error::length_with_transfer_encoding);
    BOOST_TEST(check({"5", "5"}, {"chunked"}) == framing_error::length_with_transfer_encoding);
    BOOST_TEST(check({"5"}, {"chunked"}, true) == framing_error::length_with_transfer_encoding);
}

BOOST_AUTO_TEST_CASE(exactly_one_chunked_coding_is_accepted) {
    BOOST_TEST(check({}, {"chunked"}) == framing_error::none);
    BOOST_TEST(check({}, {"Chunked"}) == framing_error::none);
    BOOST_TEST(check({}, {" chunked\t"}) == framing_error::none);
}

BOOST_AUTO_TEST_CASE(any_other_transfer_encoding_is_unsupported) {
    for (std::string_view te :
         {"chunked, identity", "gzip, chunked", "identity", "", "chunked, chunked", "gzip",
          "chunked,", ",chunked", "chunkedx", "x-chunked"}) {
        BOOST_TEST_CONTEXT("Transfer-Encoding: '" << te << "'") {
            BOOST_TEST(check({}, {te}) == framing_error::unsupported_transfer_encoding);
        }
    }
    // The same codings spread over two fields.
    BOOST_TEST(check({}, {"gzip", "chunked"}) == framing_error::unsupported_transfer_encoding);
    BOOST_TEST(check({}, {"chunked", "chunked"}) == framing_error::unsupported_transfer_encoding);
    BOOST_TEST(check({}, {"chunked", "identity"}) == framing_error::unsupported_transfer_encoding);
}

BOOST_AUTO_TEST_CASE(transfer_encoding_on_http10_is_unsupported) {
    BOOST_TEST(check({}, {"chunked"}, true) == framing_error::unsupported_transfer_encoding);
    BOOST_TEST(check({}, {"identity"}, true) == framing_error::unsupported_transfer_encoding);
}

BOOST_AUTO_TEST_CASE(valid_content_lengths_are_accepted) {
    BOOST_TEST(check({"5"}, {}) == framing_error::none);
    BOOST_TEST(check({"0"}, {}) == framing_error::none);
    BOOST_TEST(check({"5, 5"}, {}) == framing_error::none);
    BOOST_TEST(check({"5,5"}, {}) == framing_error::none);
    BOOST_TEST(check({"5", "5"}, {}) == framing_error::none);
    BOOST_TEST(check({"5"}, {}, true) == framing_error::none);
    // 18 digits is the longest length taken.
    BOOST_TEST(check({"999999999999999999"}, {}) == framing_error::none);
}

BOOST_AUTO_TEST_CASE(differing_content_lengths_conflict) {
    BOOST_TEST(check({"5", "6"}, {}) == framing_error::conflicting_content_length);
    BOOST_TEST(check({"5, 6"}, {}) == framing_error::conflicting_content_length);
    BOOST_TEST(check({"5", "5, 6"}, {}) == framing_error::conflicting_content_length);
    BOOST_TEST(check({"0", "1"}, {}) == framing_error::conflicting_content_length);
}

BOOST_AUTO_TEST_CASE(malformed_content_lengths_are_bad) {
    for (std::string_view cl :
         {"", " ", "-1", "+5", "abc", "1e3", "5 5", "0x10", "5.0", "5;", "1000000000000000000",
          "18446744073709551616", "99999999999999999999999"}) {
        BOOST_TEST_CONTEXT("Content-Length: '" << cl << "'") {
            BOOST_TEST(check({cl}, {}) == framing_error::bad_content_length);
        }
    }
    BOOST_TEST(check({"5", "abc"}, {}) == framing_error::bad_content_length);
    BOOST_TEST(check({"5", ""}, {}) == framing_error::bad_content_length);
}

BOOST_AUTO_TEST_CASE(every_verdict_has_a_description) {
    for (auto e : {framing_error::none, framing_error::length_with_transfer_encoding,
                   framing_error::unsupported_transfer_encoding, framing_error::bad_content_length,
                   framing_error::conflicting_content_length}) {
        BOOST_TEST(!neptun::net::describe(e).empty());
    }
    BOOST_TEST(neptun::net::describe(framing_error::bad_content_length) !=
               neptun::net::describe(framing_error::conflicting_content_length));
}

BOOST_AUTO_TEST_SUITE_END()
