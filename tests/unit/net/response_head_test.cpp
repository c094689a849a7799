// Our own response head: what a client's parser reads from it, field for field.
#include <boost/test/unit_test.hpp>

#include <boost/beast/http.hpp>

#include <string>

#include "neptun/net/response_head.hpp"

using namespace neptun::net;

namespace {

struct parsed {
    http::response<http::string_body> msg;
    bool complete = false;
};

// Parses head + body as a client would; `head_request` as for a response to HEAD.
parsed parse(const std::string& bytes, bool head_request = false) {
    http::response_parser<http::string_body> p;
    p.skip(head_request);
    p.eager(true);
    boost::system::error_code ec;
    auto used = p.put(boost::asio::buffer(bytes), ec);
    parsed out;
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(used == bytes.size());
    out.complete = p.is_done();
    out.msg = p.release();
    return out;
}

response json_answer(http::status status, std::string body) {
    response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::etag, "W/\"3\"");
    res.body() = std::move(body);
    return res;
}

std::string serialize(const response& res, const response_framing& f, bool* send_body = nullptr) {
    std::string out;
    bool body = append_response_head(out, res, f);
    if (send_body) *send_body = body;
    if (body) out += res.body();
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(response_head)

BOOST_AUTO_TEST_CASE(a_keep_alive_answer_reads_back_whole) {
    auto res = json_answer(http::status::ok, R"({"id":1})");
    response_framing f{11, true, false, "Sun, 06 Nov 1994 08:49:37 GMT", "abc-1"};
    auto bytes = serialize(res, f);
    BOOST_TEST(bytes.starts_with("HTTP/1.1 200 OK\r\n"));
    auto p = parse(bytes);
    BOOST_TEST(p.complete);
    BOOST_TEST(p.msg.result_int() == 200u);
    BOOST_TEST(p.msg.keep_alive());
    BOOST_TEST(p.msg[http::field::connection] == "");
    BOOST_TEST(p.msg[http::field::content_type] == "application/json");
    BOOST_TEST(p.msg[http::field::etag] == "W/\"3\"");
    BOOST_TEST(p.msg[http::field::date] == "Sun, 06 Nov 1994 08:49:37 GMT");
    BOOST_TEST(p.msg["X-Request-Id"] == "abc-1");
    BOOST_TEST(p.msg[http::field::content_length] == "8");
    BOOST_TEST(p.msg.body() == R"({"id":1})");
    BOOST_TEST(std::distance(p.msg.begin(), p.msg.end()) == 5);
}

BOOST_AUTO_TEST_CASE(the_handlers_own_framing_fields_are_replaced_by_ours) {
    auto res = json_answer(http::status::ok, "{}");
    res.set(http::field::content_length, "999");
    res.set(http::field::connection, "keep-alive");
    res.set(http::field::date, "yesterday");
    res.set("x-request-id", "theirs");
    res.set(http::field::transfer_encoding, "chunked");
    auto p = parse(serialize(res, {11, false, false, "today", "ours"}));
    BOOST_TEST(p.msg[http::field::content_length] == "2");
    BOOST_TEST(p.msg[http::field::connection] == "close");
    BOOST_TEST(!p.msg.keep_alive());
    BOOST_TEST(p.msg[http::field::date] == "today");
    BOOST_TEST(p.msg["X-Request-Id"] == "ours");
    BOOST_TEST(p.msg.count(http::field::transfer_encoding) == 0u);
    BOOST_TEST(p.msg.count(http::field::date) == 1u);
    BOOST_TEST(p.msg.body() == "{}");
}

BOOST_AUTO_TEST_CASE(http_1_0_says_keep_alive_when_it_keeps_the_connection) {
    auto res = json_answer(http::status::not_found, "{}");
    auto kept = parse(serialize(res, {10, true, false, "d", "r"}));
    BOOST_TEST(kept.msg.version() == 10u);
    BOOST_TEST(kept.msg[http::field::connection] == "keep-alive");
    BOOST_TEST(kept.msg.keep_alive());
    auto closed = parse(serialize(res, {10, false, false, "d", "r"}));
    BOOST_TEST(!closed.msg.keep_alive());
}

BOOST_AUTO_TEST_CASE(a_304_has_neither_length_nor_body) {
    response res{http::status::not_modified, 11};
    res.set(http::field::etag, "W/\"3\"");
    bool body = true;
    auto bytes = serialize(res, {11, true, false, "d", "r"}, &body);
    BOOST_TEST(!body);
    BOOST_TEST(bytes.ends_with("\r\n\r\n"));
    BOOST_TEST(bytes.find("Content-Length") == std::string::npos);
    BOOST_TEST(bytes.starts_with("HTTP/1.1 304 Not Modified\r\n"));
    BOOST_TEST(parse(bytes).complete);
}

BOOST_AUTO_TEST_CASE(a_head_answer_says_the_length_and_sends_no_body) {
    auto res = json_answer(http::status::ok, R"({"name":"x"})");
    bool body = true;
    auto bytes = serialize(res, {11, true, true, "d", "r"}, &body);
    BOOST_TEST(!body);
    BOOST_TEST(bytes.ends_with("\r\n\r\n"));
    auto p = parse(bytes, true);
    BOOST_TEST(p.msg[http::field::content_length] == "12");
    BOOST_TEST(p.msg.body().empty());
}

BOOST_AUTO_TEST_CASE(a_status_without_a_reason_of_its_own_gets_the_standard_one) {
    auto res = json_answer(http::status::precondition_required, "{}");
    BOOST_TEST(serialize(res, {11, true, false, "d", "r"})
                   .starts_with("HTTP/1.1 428 Precondition Required\r\n"));
    res.reason("Custom");
    BOOST_TEST(serialize(res, {11, true, false, "d", "r"}).starts_with("HTTP/1.1 428 Custom\r\n"));
}

BOOST_AUTO_TEST_SUITE_END()
