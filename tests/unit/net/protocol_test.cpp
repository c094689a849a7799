// The pure edge rules of CONTRACT.md §1.3: what may begin a request, chunk extensions,
// request ids, traceparent, the Date format and the access-log interval.
#include <boost/test/unit_test.hpp>

#include <limits>
#include <string>
#include <vector>

#include "neptun/net/protocol.hpp"

using namespace neptun::net;

BOOST_AUTO_TEST_SUITE(protocol)

BOOST_AUTO_TEST_CASE(a_request_line_may_follow_empty_lines) {
    auto s = classify_start("\r\n\r\nGET / HTTP/1.1\r\n");
    BOOST_TEST(s.empty_lines == 4u);
    BOOST_TEST(!s.refused);
    BOOST_TEST(s.method_seen);
}

BOOST_AUTO_TEST_CASE(a_partial_method_waits_for_more) {
    for (std::string part : {"", "G", "PAT", "\r", "\r\n\r"}) {
        BOOST_TEST_CONTEXT("[" << part << "]") {
            auto s = classify_start(part);
            BOOST_TEST(!s.refused);
            BOOST_TEST(!s.method_seen);
        }
    }
}

BOOST_AUTO_TEST_CASE(bytes_that_cannot_begin_a_request_are_refused_at_once) {
    for (std::string bad : {std::string("\x16\x03\x01", 3), std::string("\0", 1),
                            std::string(" GET"), std::string("\n"), std::string("GE\x80T /"),
                            std::string("\r\r"), std::string("GET\t/"), std::string("{\"a\":1}")}) {
        BOOST_TEST_CONTEXT("[" << bad << "]") {
            BOOST_TEST(classify_start(bad).refused);
        }
    }
}

BOOST_AUTO_TEST_CASE(chunk_extensions) {
    BOOST_TEST(acceptable_chunk_extensions(""));
    BOOST_TEST(acceptable_chunk_extensions(";a=b;c=\"d e\\\"f\"\t"));
    BOOST_TEST(!acceptable_chunk_extensions(";a=\"\nx\""));
    BOOST_TEST(!acceptable_chunk_extensions(";a=\"\rx\""));
    BOOST_TEST(!acceptable_chunk_extensions(std::string(";a=\0", 4)));
    BOOST_TEST(!acceptable_chunk_extensions(";a=\x7f"));
    BOOST_TEST(acceptable_chunk_extensions(";" + std::string(max_chunk_line - 19, 'x')));
    BOOST_TEST(!acceptable_chunk_extensions(";" + std::string(max_chunk_line - 18, 'x')));
}

BOOST_AUTO_TEST_CASE(request_ids) {
    BOOST_TEST(acceptable_request_id("a"));
    BOOST_TEST(acceptable_request_id(std::string(128, '~')));
    BOOST_TEST(!acceptable_request_id(""));
    BOOST_TEST(!acceptable_request_id(std::string(129, 'a')));
    BOOST_TEST(!acceptable_request_id("a b"));
    BOOST_TEST(!acceptable_request_id("a\x7f"));
    BOOST_TEST(!acceptable_request_id("\xc3\xa9"));
}

BOOST_AUTO_TEST_CASE(traceparent) {
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const std::string header = "00-" + trace + "-00f067aa0ba902b7-01";
    auto id = trace_id_of(header);  // a view into `header`
    BOOST_REQUIRE(id);
    BOOST_TEST(*id == trace);
    // A later version may carry more fields.
    BOOST_TEST(trace_id_of("01-" + trace + "-00f067aa0ba902b7-01-extra").has_value());
    for (const std::string& bad : std::vector<std::string>{
             "00-" + trace + "-00f067aa0ba902b7-01-extra", "ff-" + trace + "-00f067aa0ba902b7-01",
             "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
             "00-" + trace + "-0000000000000000-01",
             "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
             "00-" + trace + "-00f067aa0ba902b7", std::string("")}) {
        BOOST_TEST_CONTEXT(bad) {
            BOOST_TEST(!trace_id_of(bad).has_value());
        }
    }
}

BOOST_AUTO_TEST_CASE(http_date) {
    BOOST_TEST(format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
}

BOOST_AUTO_TEST_CASE(access_log_interval) {
    BOOST_TEST(access_log_every(1.0) == 1u);
    BOOST_TEST(access_log_every(0.01) == 100u);
    BOOST_TEST(access_log_every(0.3) == 3u);
    BOOST_TEST(access_log_every(0) == 0u);
    BOOST_TEST(access_log_every(1e-30) == std::numeric_limits<std::uint64_t>::max());
}

BOOST_AUTO_TEST_SUITE_END()
