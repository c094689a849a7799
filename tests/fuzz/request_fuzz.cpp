// Raw bytes on a connection -> Beast 1.81's request parser with the server's limits -> our
// framing check -> the API's route table, message after message as on a keep-alive
// connection. Crashes, sanitizer reports and these invariants are findings:
//  - an early answer is a 404 or 405 with a JSON error body (405: Allow: GET, PATCH);
//  - framing that check_framing() accepts is framing Beast reads the same way: a
//    Transfer-Encoding means chunked, a lone Content-Length is the length Beast uses;
//  - a complete body without chunked coding is exactly Content-Length bytes long.
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
#include "neptun/projects/ids.hpp"

namespace {

namespace bhttp = boost::beast::http;
using neptun::net::framing_error;
using parser_type = bhttp::request_parser<bhttp::string_body>;

// The same table as projects::api_service::make_router(), without pulling in the service.
const neptun::http::router& api_router() {
    static const neptun::http::router r({{"/api/users/{user_id}/projects/{project_id}",
                                          {bhttp::verb::get, bhttp::verb::patch},
                                          neptun::net::route_label::project}});
    return r;
}

// Returns whether the request was answered at once (404/405).
bool check_routing(const bhttp::request<bhttp::string_body>& req) {
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
    NEPTUN_FUZZ_CHECK(routed.label == neptun::net::route_label::project);
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto rest = neptun::fuzz::as_text(data, size);
    // A fresh parser per request, as the connection loop has it; a bounded number of
    // pipelined requests keeps one input from running long.
    for (int message = 0; message < 32 && !rest.empty(); ++message) {
        parser_type p;
        p.header_limit(8192);
        p.body_limit(65536);
        p.eager(true);
        bool header_checked = false, go_on = true;
        boost::beast::error_code ec;
        for (;;) {
            auto used = p.put(boost::asio::buffer(rest.data(), rest.size()), ec);
            NEPTUN_FUZZ_CHECK(used <= rest.size());
            rest.remove_prefix(used);
            if (p.is_header_done() && !header_checked) {
                header_checked = true;
                go_on = check_header(p);
                if (!go_on) break;
            }
            if (ec == bhttp::error::need_more) {
                if (rest.empty() || used == 0) {
                    // The input ends inside this message: the peer closed mid-request.
                    p.put_eof(ec);
                    NEPTUN_FUZZ_CHECK(ec || p.is_done());
                    go_on = false;
                    break;
                }
                ec = {};
                continue;
            }
            if (ec || p.is_done()) break;
            if (rest.empty() || used == 0) {
                p.put_eof(ec);
                go_on = false;
                break;
            }
        }
        if (!go_on) return 0;
        if (ec == bhttp::error::body_limit && !header_checked) {
            // A declared Content-Length over the limit: the server still routes the header
            // first (404/405 before 413).
            check_routing(p.get());
            return 0;
        }
        if (ec) return 0;  // 400/413 and close
        NEPTUN_FUZZ_CHECK(p.is_done());
        const auto& req = p.get();
        if (!p.chunked()) {
            auto declared = p.content_length();
            NEPTUN_FUZZ_CHECK(req.body().size() == (declared ? *declared : 0));
        }
        NEPTUN_FUZZ_CHECK(req.body().size() <= 65536);
        if (!p.keep_alive()) return 0;
    }
    return 0;
}
