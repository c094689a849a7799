// The connection loop's rules without a socket: what happens after a header and after a
// body, in the contract's order (CONTRACT.md §1, §1.3 and the drain).
#include <boost/test/unit_test.hpp>

#include <ostream>

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include "neptun/net/connection_rules.hpp"

namespace neptun::net {
// Lets BOOST_TEST print the steps it compares.
static std::ostream& operator<<(std::ostream& os, next_step s) {
    switch (s) {
        case next_step::close:
            return os << "close";
        case next_step::refuse:
            return os << "refuse";
        case next_step::answer_early:
            return os << "answer_early";
        case next_step::read_body:
            return os << "read_body";
        case next_step::handle:
            return os << "handle";
    }
    return os << "?";
}
static std::ostream& operator<<(std::ostream& os, header_read r) {
    return os << static_cast<int>(r);
}
static std::ostream& operator<<(std::ostream& os, body_read r) {
    return os << static_cast<int>(r);
}
}  // namespace neptun::net

namespace {

using namespace neptun::net;
using status = boost::beast::http::status;
namespace bhttp = boost::beast::http;

// A complete, routed, bodiless keep-alive GET: each case changes what it tests.
header_facts plain_get() {
    header_facts f;
    f.read = header_read::complete;
    f.keep_alive = true;
    f.body_done = true;
    return f;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(net_connection_rules)

BOOST_AUTO_TEST_CASE(a_complete_bodiless_request_is_handled) {
    auto v = after_header(plain_get());
    BOOST_TEST(v.step == next_step::handle);
    BOOST_TEST(v.label_from_route);
    BOOST_TEST(!v.deadline_close);
    BOOST_TEST(!v.framing_refusal);
}

BOOST_AUTO_TEST_CASE(a_body_still_to_come_is_read_first) {
    auto f = plain_get();
    f.has_body = true;
    f.body_done = false;
    BOOST_TEST(after_header(f).step == next_step::read_body);
}

BOOST_AUTO_TEST_CASE(protocol_errors_come_before_everything_else) {
    auto f = plain_get();
    f.protocol_error = "Exactly one Host header is required";
    f.routed_early = true;  // a 404 path: the 400 still wins
    f.draining = true;      // and the drain's 503 too
    auto v = after_header(f);
    BOOST_TEST(v.step == next_step::refuse);
    BOOST_TEST(v.status == status::bad_request);
    BOOST_TEST(v.message == "Exactly one Host header is required");
    BOOST_TEST(v.framing_refusal);
    BOOST_TEST(!v.label_from_route);  // counted as unmatched: no route was served
    // Also over a Content-Length past the limit (the header was parsed).
    f.read = header_read::body_too_large;
    BOOST_TEST(after_header(f).status == status::bad_request);
}

BOOST_AUTO_TEST_CASE(a_header_too_large_is_431_and_ignores_the_protocol_check) {
    auto f = plain_get();
    f.read = header_read::too_large;
    f.protocol_error = "unused";  // an unparsed header has nothing to check
    auto v = after_header(f);
    BOOST_TEST(v.step == next_step::refuse);
    BOOST_TEST(v.status == status::request_header_fields_too_large);
    BOOST_TEST(v.message == "Request header fields too large");
    BOOST_TEST(!v.framing_refusal);
}

BOOST_AUTO_TEST_CASE(the_route_answers_before_the_413) {
    auto f = plain_get();
    f.read = header_read::body_too_large;
    f.routed_early = true;
    f.has_body = true;
    auto early = after_header(f);
    BOOST_TEST(early.step == next_step::answer_early);
    BOOST_TEST(!early.keep);  // the body is never read: the connection cannot go on
    f.routed_early = false;
    auto v = after_header(f);
    BOOST_TEST(v.step == next_step::refuse);
    BOOST_TEST(v.status == status::payload_too_large);
    BOOST_TEST(v.label_from_route);
}

BOOST_AUTO_TEST_CASE(timeouts_and_gone_peers_close_without_an_answer) {
    auto f = plain_get();
    f.read = header_read::timed_out;
    auto t = after_header(f);
    BOOST_TEST(t.step == next_step::close);
    BOOST_TEST(t.deadline_close);
    f.read = header_read::peer_gone;
    auto g = after_header(f);
    BOOST_TEST(g.step == next_step::close);
    BOOST_TEST(!g.deadline_close);
}

BOOST_AUTO_TEST_CASE(our_own_refusals_and_malformed_headers_are_400) {
    auto f = plain_get();
    f.read = header_read::refused;
    f.refusal = "Obsolete line folding is not accepted";
    auto r = after_header(f);
    BOOST_TEST(r.step == next_step::refuse);
    BOOST_TEST(r.status == status::bad_request);
    BOOST_TEST(r.message == "Obsolete line folding is not accepted");
    f.read = header_read::malformed;
    auto m = after_header(f);
    BOOST_TEST(m.status == status::bad_request);
    BOOST_TEST(m.message == "Malformed HTTP request");
}

BOOST_AUTO_TEST_CASE(a_request_during_the_drain_is_503_but_a_404_is_still_a_404) {
    auto f = plain_get();
    f.draining = true;
    auto v = after_header(f);
    BOOST_TEST(v.step == next_step::refuse);
    BOOST_TEST(v.status == status::service_unavailable);
    BOOST_TEST(v.message == "Server is shutting down");
    f.routed_early = true;
    auto e = after_header(f);
    BOOST_TEST(e.step == next_step::answer_early);
    BOOST_TEST(!e.keep);  // and it closes
}

BOOST_AUTO_TEST_CASE(an_early_answer_keeps_the_connection_only_when_nothing_is_left_to_read) {
    auto f = plain_get();
    f.routed_early = true;
    BOOST_TEST(after_header(f).keep);
    auto with_body = f;
    with_body.has_body = true;
    BOOST_TEST(!after_header(with_body).keep);
    auto closing = f;
    closing.closing = true;  // SIGTERM seen, the shutdown delay running
    BOOST_TEST(!after_header(closing).keep);
    auto asked = f;
    asked.keep_alive = false;
    BOOST_TEST(!after_header(asked).keep);
}

BOOST_AUTO_TEST_CASE(body_outcomes_in_order) {
    BOOST_TEST(after_body(body_read::complete, false).step == next_step::handle);
    auto t = after_body(body_read::timed_out, false);
    BOOST_TEST(t.step == next_step::close);
    BOOST_TEST(t.deadline_close);
    BOOST_TEST(after_body(body_read::peer_gone, false).step == next_step::close);
    auto big = after_body(body_read::too_large, false);
    BOOST_TEST(big.status == status::payload_too_large);
    auto tr = after_body(body_read::trailers, false);
    BOOST_TEST(tr.status == status::bad_request);
    BOOST_TEST(tr.message == "Trailer fields are not accepted");
    BOOST_TEST(tr.framing_refusal);
    auto bad = after_body(body_read::malformed, false);
    BOOST_TEST(bad.message == "Malformed request body");
    BOOST_TEST(!bad.framing_refusal);
}

BOOST_AUTO_TEST_CASE(trailer_fields_merged_into_the_header_are_refused) {
    auto v = after_body(body_read::complete, true);
    BOOST_TEST(v.step == next_step::refuse);
    BOOST_TEST(v.status == status::bad_request);
    BOOST_TEST(v.message == "Trailer fields are not accepted");
    BOOST_TEST(v.framing_refusal);
}

BOOST_AUTO_TEST_CASE(keep_alive_after_a_response) {
    BOOST_TEST(keep_after_response(true, false, false));
    BOOST_TEST(!keep_after_response(false, false, false));
    BOOST_TEST(!keep_after_response(true, true, false));
    BOOST_TEST(!keep_after_response(true, false, true));
}

BOOST_AUTO_TEST_CASE(read_errors_are_classified_once) {
    using boost::system::error_code;
    BOOST_TEST(classify_header_read(error_code{}, nullptr) == header_read::complete);
    BOOST_TEST(classify_header_read(bhttp::error::header_limit, nullptr) == header_read::too_large);
    BOOST_TEST(classify_header_read(bhttp::error::body_limit, nullptr) ==
               header_read::body_too_large);
    BOOST_TEST(classify_header_read(boost::beast::error::timeout, nullptr) ==
               header_read::timed_out);
    BOOST_TEST(classify_header_read(bhttp::error::bad_value, "Obsolete line folding") ==
               header_read::refused);
    BOOST_TEST(classify_header_read(boost::asio::error::connection_reset, nullptr) ==
               header_read::peer_gone);
    BOOST_TEST(classify_header_read(bhttp::error::end_of_stream, nullptr) ==
               header_read::peer_gone);
    BOOST_TEST(classify_header_read(bhttp::error::bad_target, nullptr) == header_read::malformed);

    BOOST_TEST(classify_body_read(error_code{}, false) == body_read::complete);
    BOOST_TEST(classify_body_read(boost::beast::error::timeout, true) == body_read::timed_out);
    BOOST_TEST(classify_body_read(boost::asio::error::eof, false) == body_read::peer_gone);
    BOOST_TEST(classify_body_read(bhttp::error::body_limit, true) == body_read::too_large);
    BOOST_TEST(classify_body_read(bhttp::error::bad_chunk_extension, true) == body_read::trailers);
    BOOST_TEST(classify_body_read(bhttp::error::bad_chunk, false) == body_read::malformed);
    BOOST_TEST(is_peer_gone(boost::asio::error::broken_pipe));
    BOOST_TEST(!is_peer_gone(bhttp::error::bad_chunk));
}

BOOST_AUTO_TEST_SUITE_END()
