// Raw bytes on a connection -> Beast 1.81's request parser with the server's limits -> our
// framing check -> the API's route table, message after message as on a keep-alive
// connection, the bytes given all at once and again in pieces. Crashes, sanitizer reports and
// these invariants are findings:
//  - an early answer is a 404 or 405 with a JSON error body (405: Allow: GET, PATCH);
//  - framing that check_framing() accepts is framing Beast reads the same way: a
//    Transfer-Encoding means chunked, a lone Content-Length is the length Beast uses;
//  - a complete body without chunked coding is exactly Content-Length bytes long;
//  - the requests read are the same however the bytes were cut into pieces.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "fuzz_support.hpp"
#include "neptun/http/router.hpp"
#include "neptun/net/framing.hpp"
#include "neptun/net/protocol.hpp"
#include "neptun/net/server.hpp"
#include "neptun/projects/ids.hpp"

namespace {

namespace bhttp = boost::beast::http;
using neptun::net::framing_error;
// The server's own request type: its header fields through a polymorphic allocator (here
// the default resource; the server's is a per-request arena).
using parser_type =
    bhttp::request_parser<bhttp::string_body, neptun::net::request_fields::allocator_type>;

// The same table as projects::api_service::make_router(), without pulling in the service.
const neptun::http::router& api_router() {
    static const neptun::http::router r({{"/api/users/{user_id}/projects/{project_id}",
                                          {bhttp::verb::get, bhttp::verb::patch},
                                          "project"}});
    return r;
}

// Returns whether the request was answered at once (404/405).
bool check_routing(const neptun::net::request& req) {
    auto target = std::string_view(req.target().data(), req.target().size());
    auto method = req.method();
    auto routed = api_router().decide(target, method);
    auto match = api_router().find(target, method);
    if (routed.early) {
        const auto& res = *routed.early;
        unsigned status = res.result_int();
        NEPTUN_FUZZ_CHECK(status == 404 || status == 405);
        NEPTUN_FUZZ_CHECK(res.body().starts_with("{\"statusCode\":"));
        NEPTUN_FUZZ_CHECK(
            res.body().starts_with("{\"statusCode\":" + std::to_string(status) + ","));
        NEPTUN_FUZZ_CHECK(res[bhttp::field::content_type] == "application/json");
        if (status == 405) {
            NEPTUN_FUZZ_CHECK(match.result == neptun::http::route_match::kind::wrong_method);
            NEPTUN_FUZZ_CHECK(res[bhttp::field::allow] == "GET, PATCH");
            NEPTUN_FUZZ_CHECK(method != bhttp::verb::get && method != bhttp::verb::patch);
        } else {
            NEPTUN_FUZZ_CHECK(match.result == neptun::http::route_match::kind::no_route);
            NEPTUN_FUZZ_CHECK(routed.route == -1);
        }
        return true;
    }
    NEPTUN_FUZZ_CHECK(match.result == neptun::http::route_match::kind::found);
    NEPTUN_FUZZ_CHECK(routed.route == 0);
    NEPTUN_FUZZ_CHECK(routed.label.name() == "project");
    NEPTUN_FUZZ_CHECK(method == bhttp::verb::get || method == bhttp::verb::patch);
    NEPTUN_FUZZ_CHECK(target.starts_with("/api/users/"));
    // The two parameters are whole, non-empty path segments of the path (not the query).
    auto path = target.substr(0, target.find('?'));
    for (int i = 0; i < 2; ++i) {
        auto p = match.params[static_cast<std::size_t>(i)];
        NEPTUN_FUZZ_CHECK(!p.empty());
        NEPTUN_FUZZ_CHECK(p.find('/') == std::string_view::npos);
        NEPTUN_FUZZ_CHECK(p.data() >= path.data() &&
                          p.data() + p.size() <= path.data() + path.size());
        // What the handler reads from the routing is the segment the router matched.
        NEPTUN_FUZZ_CHECK(routed.param(target, static_cast<std::size_t>(i)) == p);
        (void)neptun::projects::parse_id(p);
    }
    return false;
}

// True when the server would go on reading this connection after the header.
bool check_header(const parser_type& p) {
    const auto& req = p.get();
    std::vector<std::string_view> lengths, encodings;
    for (const auto& f : req) {
        auto v = std::string_view(f.value().data(), f.value().size());
        if (f.name() == bhttp::field::content_length)
            lengths.push_back(v);
        else if (f.name() == bhttp::field::transfer_encoding)
            encodings.push_back(v);
    }
    auto fe = neptun::net::check_framing(lengths, encodings, req.version() < 11);
    NEPTUN_FUZZ_CHECK(
        fe == framing_error::none || fe == framing_error::length_with_transfer_encoding ||
        fe == framing_error::unsupported_transfer_encoding ||
        fe == framing_error::bad_content_length || fe == framing_error::conflicting_content_length);
    NEPTUN_FUZZ_CHECK(!neptun::net::describe(fe).empty());
    if (!lengths.empty() && !encodings.empty())
        NEPTUN_FUZZ_CHECK(fe == framing_error::length_with_transfer_encoding);
    // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): any Transfer-Encoding there is refused.
    if (req.version() < 11 && !encodings.empty()) NEPTUN_FUZZ_CHECK(fe != framing_error::none);
    if (fe != framing_error::none) return false;  // the server answers 400 and closes

    // Accepted framing must be the framing Beast reads the body with.
    if (!encodings.empty()) {
        NEPTUN_FUZZ_CHECK(p.chunked());
    } else if (!lengths.empty()) {
        NEPTUN_FUZZ_CHECK(!p.chunked());
        auto declared = p.content_length();
        NEPTUN_FUZZ_CHECK(declared.has_value());
        // Every element agrees (check_framing says so): compare with the first.
        auto first = lengths.front().substr(0, lengths.front().find(','));
        while (!first.empty() && (first.front() == ' ' || first.front() == '\t'))
            first.remove_prefix(1);
        while (!first.empty() && (first.back() == ' ' || first.back() == '\t'))
            first.remove_suffix(1);
        std::uint64_t v = 0;
        for (char c : first) v = v * 10 + static_cast<std::uint64_t>(c - '0');
        NEPTUN_FUZZ_CHECK(*declared == v);
    } else {
        NEPTUN_FUZZ_CHECK(!p.chunked());
    }
    // An early answer to a request with a body closes the connection (its body is not read).
    bool early = check_routing(req);
    return !(early && (!req.keep_alive() || p.chunked() || req.has_content_length()));
}

// What became of one request on the connection, to compare two ways of receiving the bytes.
struct outcome {
    bool header_done = false;
    bool go_on = false;  // framing accepted and the connection continues past the header
    std::string method, target, body;
    bool done = false;
    boost::beast::error_code ec;
};

// Which error ends a connection may differ (Beast waits for a whole header before it judges
// the start line, so a short read ends in partial_message where the whole input gives
// bad_version); whether one does, and every request read before, may not.
bool same_requests(const std::vector<outcome>& a, const std::vector<outcome>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto &x = a[i], &y = b[i];
        if (x.header_done != y.header_done || x.done != y.done || bool(x.ec) != bool(y.ec))
            return false;
        if (x.header_done && (x.go_on != y.go_on || x.method != y.method || x.target != y.target))
            return false;
        if (x.done && x.body != y.body) return false;
    }
    return true;
}

// The bytes arrive `piece` bytes at a time into one buffer that outlives each request, as the
// connection loop's flat_buffer does; a fresh parser per request. Returns false when Beast's
// header limit was hit, whose count depends on how the bytes arrived.
bool run_connection(std::string_view input, std::size_t piece, std::vector<outcome>& out) {
    std::string buffer;
    std::size_t fed = 0;
    auto feed = [&] {
        auto n = std::min(piece, input.size() - fed);
        buffer.append(input.substr(fed, n));
        fed += n;
    };
    // A bounded number of pipelined requests keeps one input from running long.
    for (int message = 0; message < 32; ++message) {
        if (buffer.empty() && fed == input.size()) return true;  // the peer closed between requests
        parser_type p;
        p.header_limit(8192);
        p.body_limit(65536);
        p.eager(true);
        auto& o = out.emplace_back();
        boost::beast::error_code ec;
        for (;;) {
            if (buffer.empty()) feed();
            neptun::fuzz::exact_copy offered(buffer);  // a read past the end is an ASan report
            auto used =
                p.put(boost::asio::buffer(offered.view().data(), offered.view().size()), ec);
            NEPTUN_FUZZ_CHECK(used <= buffer.size());
            buffer.erase(0, used);
            if (p.is_header_done() && !o.header_done) {
                o.header_done = true;
                o.method = std::string(p.get().method_string());
                o.target = std::string(p.get().target());
                o.go_on = check_header(p);
                if (!o.go_on) return true;  // 400, or an early answer, and close
            }
            if (ec == bhttp::error::need_more || (!ec && !p.is_done())) {
                if (fed < input.size()) {
                    // Beast must see more bytes after need_more than before (its chunk parser
                    // asserts so): async_read gives it the old ones plus new ones.
                    feed();
                    ec = {};
                    continue;
                }
                p.put_eof(ec);  // the peer closed inside this request
                NEPTUN_FUZZ_CHECK(ec || p.is_done());
                o.ec = ec;
                o.done = p.is_done();
                return true;
            }
            break;
        }
        o.ec = ec;
        if (ec == bhttp::error::header_limit) return false;
        if (ec == bhttp::error::body_limit && !o.header_done) {
            // A declared Content-Length over the limit: the server still routes the header
            // first (404/405 before 413).
            check_routing(p.get());
            return true;
        }
        if (ec) return true;  // 400/413 and close
        NEPTUN_FUZZ_CHECK(p.is_done());
        o.done = true;
        const auto& req = p.get();
        if (!p.chunked()) {
            auto declared = p.content_length();
            NEPTUN_FUZZ_CHECK(req.body().size() == (declared ? *declared : 0));
        }
        NEPTUN_FUZZ_CHECK(req.body().size() <= 65536);
        o.body = req.body();
        if (!p.keep_alive()) return true;
    }
    return true;
}

void print(const std::vector<outcome>& requests, const char* how) {
    std::fprintf(stderr, "requests read %s:\n", how);
    for (const auto& o : requests)
        std::fprintf(stderr,
                     "  header_done=%d go_on=%d method=%s target=%s done=%d body=%zu bytes "
                     "ec=%s\n",
                     o.header_done, o.go_on, o.method.c_str(), o.target.c_str(), o.done,
                     o.body.size(), o.ec.message().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto input = neptun::fuzz::as_text(data, size);
    // The edge's own rules: judging a prefix never contradicts judging the whole, and
    // nothing they accept holds a control character where the contract forbids one.
    auto start = neptun::net::classify_start(input);
    NEPTUN_FUZZ_CHECK(start.empty_lines <= input.size() && start.empty_lines % 2 == 0);
    if (neptun::net::classify_start(input.substr(0, size / 2)).refused)
        NEPTUN_FUZZ_CHECK(start.refused);
    if (neptun::net::acceptable_chunk_extensions(input))
        NEPTUN_FUZZ_CHECK(input.find_first_of(std::string_view("\r\n\0", 3)) ==
                          std::string_view::npos);
    if (auto trace = neptun::net::trace_id_of(input)) NEPTUN_FUZZ_CHECK(trace->size() == 32);
    std::vector<outcome> at_once, in_pieces;
    bool comparable = run_connection(input, std::max<std::size_t>(size, 1), at_once);
    // How TCP cut the stream must not change what the requests are.
    comparable = run_connection(input, 1 + size % 61, in_pieces) && comparable;
    if (comparable && !same_requests(at_once, in_pieces)) {
        print(at_once, "all at once");
        print(in_pieces, ("in pieces of " + std::to_string(1 + size % 61)).c_str());
    }
    if (comparable) NEPTUN_FUZZ_CHECK(same_requests(at_once, in_pieces));
    return 0;
}
